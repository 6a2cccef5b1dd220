// Sites: the tree (GET /sites/{code}/children), search (GET /sites), details
// (GET /sites/{code}), create (POST /sites), close (POST /sites/{code}/close),
// CSV import with per-row errors (POST /sites/import) and export
// (GET /sites/export). #/sites/CODE shows one site.
(function () {
  const LL = window.LL;
  const h = LL.h;
  const t = (k, v) => LL.t(k, v);
  const KINDS = ["city", "township", "village", "elder_university", "community_school", "community_teaching_point", "open_university",
    "teacher_training_school", "experience_base", "museum", "culture_hall", "youth_centre", "walking_point", "science_workshop",
    "enterprise_training_centre"];
  const PARENTS = ["city", "township", "village"];
  // Which parent levels each kind may sit under (the API checks; this only
  // keeps the create form from offering kinds it would refuse).
  const CTV = ["city", "township", "village"];
  const UNDER = {
    township: ["city"], village: ["township"], elder_university: ["city", "township"], community_school: ["township"],
    community_teaching_point: ["village"], open_university: ["city", "township"], teacher_training_school: ["city", "township"],
    experience_base: CTV, museum: CTV, culture_hall: CTV, youth_centre: CTV, walking_point: ["township", "village"],
    science_workshop: CTV, enterprise_training_centre: ["city", "township"],
  };

  function treeNode(site, current, open) {
    const li = h("li", { "data-site": site.code });
    const link = h("a", { href: "#/sites/" + LL.enc(site.code), "aria-current": site.code === current ? "true" : null }, LL.nameOf(site));
    const kind = h("span.kind", " " + site.code);
    if (!PARENTS.includes(site.kind)) {
      li.append(h("div.row", h("span.spacer"), link, kind));
      return li;
    }
    const sub = h("ul", { hidden: true });
    const toggle = h("button.toggle", { type: "button", "aria-expanded": "false", "aria-label": t("expand", { name: LL.nameOf(site) }) }, "+");
    let loaded = false;
    async function setOpen(on) {
      toggle.setAttribute("aria-expanded", on ? "true" : "false");
      toggle.textContent = on ? "−" : "+";
      toggle.setAttribute("aria-label", t(on ? "collapse" : "expand", { name: LL.nameOf(site) }));
      sub.hidden = !on;
      if (on && !loaded) {
        loaded = true;
        try {
          const kids = await LL.api("GET", `/sites/${LL.enc(site.code)}/children`);
          sub.replaceChildren(...kids.map((k) => treeNode(k, current, open)));
          if (!kids.length) sub.append(h("li.muted", t("none")));
        } catch (e) {
          sub.replaceChildren(h("li", LL.problemBox(e)));
        }
      }
    }
    toggle.addEventListener("click", () => setOpen(toggle.getAttribute("aria-expanded") !== "true"));
    li.append(h("div.row", toggle, link, kind), sub);
    if (open.has(site.code)) setOpen(true);
    return li;
  }

  function fields(site) {
    const row = (k, v) => [h("dt", t(k)), h("dd", v === null || v === undefined || v === "" ? "—" : v)];
    return h(
      "dl.fields#site-fields",
      row("site_code", site.code),
      row("name_zh", site.name_zh),
      row("name_en", site.name_en),
      row("kind", LL.kindName(site.kind)),
      row("level", LL.kindName(site.level)),
      row("parent", site.parent_code ? h("a", { href: "#/sites/" + LL.enc(site.parent_code) }, site.parent_code) : null),
      row("address", site.address),
      row("latitude", site.latitude),
      row("longitude", site.longitude),
      row("operator", LL.has("op_" + site.operator) ? t("op_" + site.operator) : site.operator),
      row("status", h("span.badge." + (site.status === "active" ? "on" : "off"), t(site.status))),
      row("opened_on", site.opened_on),
      row("closed_on", site.closed_on)
    );
  }

  function createForm(parent) {
    const slot = h("div", { "aria-live": "polite" });
    const kinds = KINDS.filter((k) => (UNDER[k] || []).includes(parent.kind));
    const f = {
      code: h("input", { name: "code", required: true, size: 14 }),
      name_zh: h("input", { name: "name_zh", required: true }),
      name_en: h("input", { name: "name_en" }),
      kind: h("select", { name: "kind" }, kinds.map((k) => h("option", { value: k }, LL.kindName(k)))),
      address: h("input", { name: "address" }),
      latitude: h("input", { name: "latitude", type: "number", step: "any", size: 10 }),
      longitude: h("input", { name: "longitude", type: "number", step: "any", size: 10 }),
      operator: h("select", { name: "operator" }, ["public", "social_organisation", "enterprise", "school"].map((o) => h("option", { value: o }, LL.t("op_" + o)))),
      opened_on: h("input", { name: "opened_on", type: "date" }),
    };
    const form = h(
      "form.inline#create-site",
      {
        onsubmit: (e) => {
          e.preventDefault();
          LL.act(slot, async () => {
            const body = { code: f.code.value.trim(), name_zh: f.name_zh.value.trim(), kind: f.kind.value, parent_code: parent.code };
            for (const k of ["name_en", "address", "operator", "opened_on"]) if (f[k].value.trim()) body[k] = f[k].value.trim();
            for (const k of ["latitude", "longitude"]) if (f[k].value !== "") body[k] = Number(f[k].value);
            const made = await LL.api("POST", "/sites", { json: body });
            LL.flash = t("created_ok", { code: made.code });
            LL.go("#/sites/" + LL.enc(made.code));
          });
        },
      },
      Object.entries(f).map(([k, input]) => LL.field(t(k === "code" ? "site_code" : k), input)),
      h("button", { type: "submit" }, t("create"))
    );
    return h("details#create-child", h("summary", t("create_child")), form, slot);
  }

  function closeForm(site) {
    const slot = h("div", { "aria-live": "polite" });
    const on = h("input", { type: "date", name: "closed_on" });
    const form = h(
      "form.inline#close-site",
      {
        onsubmit: (e) => {
          e.preventDefault();
          LL.act(slot, async () => {
            await LL.api("POST", `/sites/${LL.enc(site.code)}/close`, on.value ? { json: { closed_on: on.value } } : {});
            LL.flash = t("closed_ok", { code: site.code });
            LL.go("#/sites/" + LL.enc(site.code));
          });
        },
      },
      LL.field(t("close_on"), on),
      h("button.danger", { type: "submit" }, t("close_site"))
    );
    return h("div", form, slot);
  }

  function importCard(top) {
    const slot = h("div#import-result", { "aria-live": "polite" });
    const file = h("input#csv-file", { type: "file", accept: ".csv,text/csv" });
    const text = h("textarea#csv-text", { name: "csv", spellcheck: "false" });
    const form = h(
      "form#import-form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          LL.act(slot, async () => {
            const body = file.files && file.files[0] ? await file.files[0].text() : text.value;
            const r = await LL.api("POST", "/sites/import", { body, type: "text/csv; charset=utf-8" });
            return t("imported_ok", r);
          });
        },
      },
      h("p.sub", t("import_sub")),
      h("div.toolbar", LL.field(t("csv_file"), file)),
      h("label", { for: "csv-text" }, t("csv_text"), text),
      h("div.actions", h("button#import-button", { type: "submit" }, t("do_import")))
    );
    const expSlot = h("div", { "aria-live": "polite" });
    const within = h("input", { name: "within", value: top, size: 12 });
    const exp = h(
      "form.inline#export-form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          LL.act(expSlot, async () => {
            const csv = await LL.api("GET", `/sites/export${LL.qs({ within: within.value.trim() })}`, { raw: true });
            const name = `sites-${within.value.trim() || "all"}.csv`;
            const a = h("a.button.secondary", { href: URL.createObjectURL(new Blob([csv], { type: "text/csv" })), download: name }, name);
            const count = Math.max(0, csv.trim().split("\n").length - 1);
            return h("div.notice", { role: "status" }, t("exported", { name, count }), " ", a);
          });
        },
      },
      LL.field(t("site_code"), within),
      h("button", { type: "submit" }, t("do_export"))
    );
    return h("div.grid.two", LL.card(t("import"), form, slot), LL.card(t("export"), h("p.sub", t("export_sub")), exp, expSlot));
  }

  LL.pages.sites = async function (view, args, params) {
    const top = LL.me.top;
    const code = args[0] || null;
    view.append(...LL.heading(t("sites_title"), t("sites_sub")));
    if (LL.flash) {
      view.append(LL.notice(LL.flash));
      LL.flash = null;
    }
    // Search
    const q = h("input#site-q", { name: "q", value: params.q || "", type: "search" });
    const kind = h("select", { name: "kind" }, h("option", { value: "" }, t("any")), KINDS.map((k) => h("option", { value: k, selected: params.kind === k }, LL.kindName(k))));
    const status = h("select", { name: "status" }, h("option", { value: "" }, t("any")), ["active", "closed"].map((s) => h("option", { value: s, selected: params.status === s }, t(s))));
    const searchForm = h(
      "form.inline#site-search",
      {
        role: "search",
        onsubmit: (e) => {
          e.preventDefault();
          const p = new URLSearchParams();
          if (q.value.trim()) p.set("q", q.value.trim());
          if (kind.value) p.set("kind", kind.value);
          if (status.value) p.set("status", status.value);
          LL.go(`#/sites${code ? "/" + LL.enc(code) : ""}?${p}`);
        },
      },
      LL.field(t("q"), q),
      LL.field(t("kind"), kind),
      LL.field(t("status"), status),
      h("button", { type: "submit" }, t("search"))
    );
    view.append(searchForm);
    if (params.q || params.kind || params.status) {
      const box = LL.card(t("results"));
      view.append(box);
      try {
        const r = await LL.api("GET", `/sites${LL.qs({ q: params.q, kind: params.kind, status: params.status, limit: 100 })}`);
        box.append(
          r.items.length
            ? h(
                "table#site-results",
                h("thead", h("tr", h("th", t("site_code")), h("th", t("name_zh")), h("th", t("kind")), h("th", t("parent")), h("th", t("status")))),
                h("tbody", r.items.map((s) => h("tr", { "data-site": s.code }, h("td", h("a", { href: "#/sites/" + LL.enc(s.code) }, s.code)), h("td", LL.nameOf(s)), h("td", LL.kindName(s.kind)), h("td", s.parent_code || "—"), h("td", t(s.status)))))
              )
            : h("p.muted#site-results-empty", t("no_results"))
        );
      } catch (e) {
        box.append(LL.problemBox(e));
      }
    }
    // Tree + details
    const treeBox = h("nav.tree.card#site-tree", { "aria-label": t("tree") }, h("h2", t("tree")));
    const detail = h("section.card#site-detail", h("h2", t("details")));
    view.append(h("div.split", treeBox, detail));
    let open = new Set([top]);
    let site = null;
    if (code) {
      try {
        site = await LL.api("GET", `/sites/${LL.enc(code)}`);
        const anc = await LL.api("GET", `/sites/${LL.enc(code)}/ancestors`).catch(() => []);
        for (const a of anc) open.add(a.code);
      } catch (e) {
        detail.append(LL.problemBox(e));
      }
    }
    try {
      const root = await LL.api("GET", `/sites/${LL.enc(top)}`);
      treeBox.append(h("ul", treeNode(root, code, open)));
    } catch (e) {
      treeBox.append(LL.problemBox(e));
    }
    if (!code) detail.append(h("p.muted", t("choose_site")));
    if (site) {
      detail.append(h("h3", LL.nameOf(site)), fields(site));
      if (PARENTS.includes(site.kind) && site.status === "active") detail.append(createForm(site));
      if (site.status === "active") detail.append(closeForm(site));
    }
    view.append(importCard(code || top));
  };
})();
