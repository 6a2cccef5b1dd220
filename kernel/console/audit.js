// Audit log of a site's subtree, newest first (GET /audit?site=&order=newest), more pages on demand.
(function () {
  const LL = window.LL;
  const h = LL.h;
  const t = (k, v) => LL.t(k, v);

  function change(e) {
    if (!e.before_json && !e.after_json) return "—";
    const pretty = (s) => {
      try {
        return JSON.stringify(JSON.parse(s), null, 1);
      } catch (x) {
        return s;
      }
    };
    return h(
      "details",
      h("summary", t("change")),
      e.before_json ? [h("div.muted", t("before")), h("pre.log", pretty(e.before_json))] : null,
      e.after_json ? [h("div.muted", t("after")), h("pre.log", pretty(e.after_json))] : null
    );
  }

  LL.pages.audit = async function (view, args, params) {
    const site = params.site || LL.me.top;
    view.append(...LL.heading(t("audit_title"), t("audit_sub", { site })));
    view.append(LL.siteForm(site, (code) => LL.go("#/audit?site=" + LL.enc(code))));
    const tbody = h("tbody");
    const slot = h("div");
    const more = h("button.secondary", { type: "button", hidden: true }, t("more"));
    view.append(
      LL.card(
        null,
        h("table#audit", h("thead", h("tr", h("th", t("at")), h("th", t("actor")), h("th", t("action")), h("th", t("object")), h("th", t("change")))), tbody),
        h("div.actions", more),
        slot
      )
    );
    let cursor = null;
    async function page() {
      await LL.act(slot, async () => {
        const r = await LL.api("GET", `/audit${LL.qs({ site, order: "newest", limit: 50, cursor })}`);
        tbody.append(
          ...r.items.map((e) =>
            h("tr", { "data-action": e.action }, h("td", LL.fmtTime(e.at)), h("td", e.actor), h("td", h("code", e.action)), h("td", `${e.object_type} ${e.object_id}`), h("td", change(e)))
          )
        );
        cursor = r.next_cursor;
        more.hidden = !cursor;
        if (!tbody.children.length) return h("p.muted", t("no_audit"));
      });
    }
    more.addEventListener("click", page);
    await page();
  };
})();
