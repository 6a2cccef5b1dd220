// Persons and accounts: persons of a site's subtree (GET /persons?site=),
// look-up by ID number (POST /persons/lookup: the number never goes in a
// URL), one person masked as the API returns it (GET /persons/{id}, roles),
// and the learning account statement (GET /persons/{id}/account/statement).
(function () {
  const LL = window.LL;
  const h = LL.h;
  const t = (k, v) => LL.t(k, v);

  function personRow(p) {
    return h(
      "tr",
      { "data-person": p.id },
      h("td", h("a", { href: "#/persons/" + p.id }, p.name)),
      h("td", h("code", p.id_number)),
      h("td", p.birth_date),
      h("td", t(p.sex)),
      h("td", p.home_site_code)
    );
  }

  async function list(view, params) {
    const site = params.site || LL.me.top;
    view.append(...LL.heading(t("persons_title"), t("persons_sub")));
    const lookupSlot = h("div", { "aria-live": "polite" });
    const idn = h("input#id-number-lookup", { name: "id_number", autocomplete: "off", size: 20 });
    const lookup = h(
      "form.inline#person-lookup",
      {
        onsubmit: (e) => {
          e.preventDefault();
          LL.act(lookupSlot, async () => {
            const p = await LL.api("POST", "/persons/lookup", { json: { id_number: idn.value.trim() } });
            idn.value = "";
            LL.go("#/persons/" + p.id);
          });
        },
      },
      LL.field(t("id_number"), idn),
      h("button", { type: "submit" }, t("do_lookup"))
    );
    view.append(h("div.grid.two", LL.card(null, LL.siteForm(site, (code) => LL.go("#/persons?site=" + LL.enc(code)))), LL.card(t("lookup"), lookup, lookupSlot)));
    const box = LL.card(null);
    view.append(box);
    const filter = h("input#name-filter", { type: "search", name: "filter" });
    const tbody = h("tbody");
    const table = h(
      "table#persons",
      h("thead", h("tr", h("th", t("name")), h("th", t("id_masked")), h("th", t("birth_date")), h("th", t("sex")), h("th", t("home_site")))),
      tbody
    );
    const more = h("button.secondary", { type: "button", hidden: true }, t("more"));
    const slot = h("div");
    box.append(h("form.inline", { onsubmit: (e) => e.preventDefault() }, LL.field(t("filter_name"), filter)), table, h("div.actions", more), slot);
    const apply = () => {
      const f = filter.value.trim();
      for (const tr of tbody.children) tr.hidden = !!f && !tr.firstChild.textContent.includes(f);
    };
    filter.addEventListener("input", apply);
    let cursor = null;
    async function page() {
      await LL.act(slot, async () => {
        const r = await LL.api("GET", `/persons${LL.qs({ site, limit: 50, cursor })}`);
        tbody.append(...r.items.map(personRow));
        if (!tbody.children.length) return h("p.muted", t("no_persons"));
        cursor = r.next_cursor;
        more.hidden = !cursor;
        apply();
      });
    }
    more.addEventListener("click", page);
    await page();
  }

  async function one(view, id) {
    view.append(h("p", h("a", { href: "#/persons" }, "← " + t("back_to_list"))));
    const p = await LL.api("GET", `/persons/${LL.enc(id)}`);
    view.append(...LL.heading(p.name));
    const row = (k, v) => [h("dt", t(k)), h("dd", v === null || v === undefined || v === "" ? "—" : v)];
    const roles = await LL.api("GET", `/persons/${LL.enc(id)}/roles`).catch((e) => e);
    view.append(
      h(
        "div.grid.two",
        LL.card(
          null,
          h(
            "dl.fields#person-fields",
            row("name", p.name),
            row("id_masked", h("code", p.id_number)),
            row("birth_date", p.birth_date),
            row("sex", t(p.sex)),
            row("phone", p.phone),
            row("home_site", h("a", { href: "#/sites/" + LL.enc(p.home_site_code) }, p.home_site_code)),
            row("login", p.login)
          )
        ),
        LL.card(
          t("roles"),
          roles instanceof Error
            ? LL.problemBox(roles)
            : roles.length
            ? h("ul", roles.map((r) => h("li", `${LL.roleName(r.role)} · ${r.site_code}`)))
            : h("p.muted", t("none"))
        )
      )
    );
    const acct = LL.card(t("account"));
    view.append(acct);
    let st;
    try {
      st = await LL.api("GET", `/persons/${LL.enc(id)}/account/statement${LL.qs({ limit: 100 })}`);
    } catch (e) {
      acct.append(LL.problemBox(e));
      return;
    }
    const a = st.account || {};
    acct.append(
      h(
        "div",
        h("span.stat", h("b", a.status || "—"), h("span", t("account_status"))),
        h("span.stat", h("b", a.activated_on || "—"), h("span", t("activated_on"))),
        h("span.stat", h("b", LL.fmtNum(st.total_credits)), h("span", t("total_credits"))),
        h("span.stat", h("b", LL.fmtNum(a.entry_count)), h("span", t("entries")))
      )
    );
    if ((st.totals || []).length) {
      acct.append(
        h("h3", t("totals")),
        h("table#totals", h("thead", h("tr", h("th", t("kind")), h("th.num", t("quantity")), h("th", t("unit")), h("th.num", t("credits")))),
          h("tbody", st.totals.map((x) => h("tr", h("td", x.kind), h("td.num", LL.fmtNum(x.quantity)), h("td", x.unit), h("td.num", LL.fmtNum(x.credits))))))
      );
    }
    acct.append(h("h3", t("statement")));
    const entries = st.entries || [];
    acct.append(
      entries.length
        ? h(
            "table#statement",
            h("thead", h("tr", h("th.num", t("seq")), h("th", t("occurred_on")), h("th", t("kind")), h("th", t("title")), h("th.num", t("quantity")), h("th", t("unit")), h("th.num", t("credits")), h("th", t("rule")))),
            h("tbody", entries.map((e) => h("tr", h("td.num", e.seq), h("td", e.occurred_on), h("td", e.kind), h("td", e.title), h("td.num", LL.fmtNum(e.quantity)), h("td", e.unit), h("td.num", LL.fmtNum(e.credits)), h("td", e.rule_code ? `${e.rule_code} v${e.rule_version}` : "—"))))
          )
        : h("p.muted", t("no_entries"))
    );
  }

  LL.pages.persons = async function (view, args, params) {
    if (args[0]) return one(view, args[0]);
    return list(view, params);
  };
})();
