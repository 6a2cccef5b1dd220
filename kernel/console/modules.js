// Modules: at a site, each installed plugin enabled here, inherited from
// above or off, the capabilities it asks for with what they mean, grant and
// enable/disable (GET /sites/{site}/plugins, PUT /plugin-registry/{id}/sites/
// {site}/grants and …/enabled); the registry with package upload (install or
// upgrade) and rollback; for city admins, the publisher trust store (site
// binding, ceilings, approval flag, revoke) and the approval queue (GET
// /plugin-approvals, POST …/{id}/approve|refuse). An enable or upgrade that
// waits for approval (202) says so, with the request's number.
(function () {
  const LL = window.LL;
  const h = LL.h;
  const t = (k, v) => LL.t(k, v);

  function status(p, site) {
    if (p.enabled_set_at === null || p.enabled_set_at === undefined) return h("span.badge.off", t("never_enabled"));
    if (p.inherited) return h("span.badge." + (p.enabled ? "inh" : "off"), t(p.enabled ? "inherited_on" : "inherited_off", { site: p.enabled_set_at }));
    return h("span.badge." + (p.enabled ? "on" : "off"), t(p.enabled ? "enabled_here" : "disabled_here"));
  }

  function capability(c) {
    let badge;
    if (c.granted) badge = c.inherited ? h("span.badge.inh", t("granted_above", { site: c.set_at })) : h("span.badge.on", t("granted_here"));
    else if (c.set_at) badge = h("span.badge.bad", t("refused_at", { site: c.set_at }));
    else badge = h("span.badge.off", t("not_granted"));
    const key = "cap_" + c.name;
    return h("li", { "data-capability": c.name }, badge, h("code", c.name), h("span", LL.has(key) ? t(key) : ""));
  }

  // A 202 answer (the change waits for a city admin's approval): the note
  // saying so, with a link to the request; else null.
  function pendingNote(r) {
    if (!r || r.status !== "pending" || !r.request) return null;
    const id = r.request.id;
    return h("span.pending", { "data-request": id }, t("pending_approval", { id }), " ", h("a", { href: "#/modules?request=" + LL.enc(id) }, t("view_request")));
  }

  // What a requested capability means: the API's explanation (in English,
  // naming any narrowing); in Chinese the console's own explanation when it
  // has one.
  function capMeaning(c) {
    const key = "cap_" + c.name;
    if (LL.lang !== "en" && LL.has(key)) return t(key);
    return c.meaning || (LL.has(key) ? t(key) : "");
  }

  function approvalCard(a, canDecide) {
    const slot = h("div", { "aria-live": "polite" });
    const name = LL.lang === "en" ? a.name_en || a.plugin : a.name_zh || a.plugin;
    const badge = h("span.badge." + (a.status === "approved" ? "on" : a.status === "refused" ? "bad" : "inh"), t("approval_" + a.status));
    const caps = (a.capabilities || []).map((c) =>
      h(
        "li",
        { "data-capability": c.name },
        c.new ? h("span.badge.inh", t("cap_new")) : null,
        h("code", c.name),
        c.fields && c.fields.length ? h("span.muted", " (" + c.fields.join(", ") + ")") : null,
        c.roles && c.roles.length ? h("span.muted", " (" + c.roles.join(", ") + ")") : null,
        h("span", capMeaning(c))
      )
    );
    const kids = [
      h("h3", { id: "approval-" + a.id }, t("request_no", { id: a.id }), " ", name, " ", h("span.muted", `${a.plugin} ${a.version}`), " ", badge),
      h(
        "dl.fields",
        h("dt", t("approval_kind")), h("dd", t(a.kind === "upgrade" ? "kind_upgrade" : "kind_first_enable")),
        h("dt", t("site")), h("dd", a.site || "—"),
        h("dt", t("publisher")), h("dd", a.publisher),
        h("dt", t("requested_by")), h("dd", `${a.requested_by} · ${LL.fmtTime(a.requested_at)}`),
        a.decided_by ? [h("dt", t("decided_by")), h("dd", `${a.decided_by} · ${LL.fmtTime(a.decided_at)}`)] : null,
        a.reason ? [h("dt", t("reason")), h("dd", a.reason)] : null
      ),
      h("h4", t("capabilities")),
      caps.length ? h("ul.caps", caps) : h("p.muted", t("no_capabilities")),
    ];
    if (canDecide && a.status === "pending") {
      const reason = h("input", { name: "reason", size: 40 });
      const decide = (verb) =>
        LL.act(slot, async () => {
          const r = reason.value.trim();
          await LL.api("POST", `/plugin-approvals/${LL.enc(a.id)}/${verb}`, { json: r || verb === "refuse" ? { reason: r } : {} });
          LL.flash = t(verb === "approve" ? "approved_ok" : "refused_ok", { id: a.id, plugin: a.plugin });
          await LL.render();
        });
      kids.push(
        h(
          "form.inline.decide",
          { onsubmit: (e) => { e.preventDefault(); decide("approve"); } },
          LL.field(t("reason_hint"), reason),
          h("button", { type: "submit", "data-action": "approve" }, t("approve")),
          h("button.danger", { type: "button", "data-action": "refuse", onclick: () => decide("refuse") }, t("refuse"))
        )
      );
    }
    kids.push(slot);
    return h("article.approval", { "data-approval": a.id, "data-status": a.status, "aria-labelledby": "approval-" + a.id }, kids);
  }

  // The approval queue: city admins see pending requests (and the last
  // decided ones) and decide; anyone else sees the request they were sent
  // to (?request=id) as far as the API lets them.
  async function approvals(view, params) {
    const box = LL.card(t("approvals"));
    box.id = "approvals";
    view.append(box);
    if (!LL.me.isCityAdmin) {
      if (!params.request) {
        box.append(h("p.muted", t("approvals_city_only")));
        return;
      }
      try {
        box.append(approvalCard(await LL.api("GET", `/plugin-approvals/${LL.enc(params.request)}`), false));
      } catch (e) {
        box.append(LL.problemBox(e));
      }
      return;
    }
    try {
      const pending = (await LL.api("GET", "/plugin-approvals?status=pending")).items;
      const decided = (await LL.api("GET", "/plugin-approvals?status=all")).items.filter((a) => a.status !== "pending").slice(-10).reverse();
      box.append(
        h("h3", t("pending_requests")),
        pending.length ? h("div#pending-approvals", pending.map((a) => approvalCard(a, true))) : h("p.muted", t("no_pending")),
        h("h3", t("decided_requests")),
        decided.length ? h("div#decided-approvals", decided.map((a) => approvalCard(a, false))) : h("p.muted", t("no_decided"))
      );
    } catch (e) {
      box.append(LL.problemBox(e));
    }
  }

  function pluginCard(p, site) {
    const slot = h("div", { "aria-live": "polite" });
    const name = LL.lang === "en" ? p.name_en || p.id : p.name_zh || p.id;
    const actions = h("div.actions");
    if (p.missing.length) {
      actions.append(
        h("button.secondary", {
          type: "button",
          "data-action": "grant",
          onclick: () =>
            LL.act(slot, async () => {
              await LL.api("PUT", `/plugin-registry/${LL.enc(p.id)}/sites/${LL.enc(site)}/grants`, { json: { capabilities: p.missing, granted: true } });
              LL.flash = t("granted_ok", { plugin: name, site });
              await LL.render();
              return null;
            }),
        }, t("grant_missing"))
      );
    }
    const setEnabled = (on) =>
      LL.act(slot, async () => {
        const r = await LL.api("PUT", `/plugin-registry/${LL.enc(p.id)}/sites/${LL.enc(site)}/enabled`, { json: { enabled: on } });
        LL.flash = pendingNote(r) || t(on ? "enabled_ok" : "disabled_ok", { plugin: name, site });
        await LL.render();
      });
    if (!p.enabled || p.inherited) actions.append(h("button", { type: "button", "data-action": "enable", onclick: () => setEnabled(true) }, t("enable_here")));
    if (p.enabled || (p.enabled_set_at && !p.inherited)) actions.append(h("button.danger", { type: "button", "data-action": "disable", onclick: () => setEnabled(false) }, t("disable_here")));
    return h(
      "article.card.plugin",
      { "data-plugin": p.id, "aria-labelledby": "plugin-" + p.id },
      h("h2", { id: "plugin-" + p.id }, name, " ", h("span.muted", `${p.id} ${p.version}`), " ", status(p, site)),
      p.description ? h("p.muted", p.description) : null,
      h("h3", t("capabilities")),
      p.capabilities.length ? h("ul.caps", p.capabilities.map(capability)) : h("p.muted", t("no_capabilities")),
      actions,
      slot
    );
  }

  async function registry(view) {
    const box = LL.card(t("registry"));
    box.id = "registry";
    view.append(box);
    let items = [];
    try {
      items = (await LL.api("GET", "/plugin-registry")).items;
    } catch (e) {
      box.append(LL.problemBox(e));
      return;
    }
    const slot = h("div#registry-result", { "aria-live": "polite" });
    const rows = items.map((p) =>
      h(
        "tr",
        { "data-plugin": p.id },
        h("td", LL.lang === "en" ? p.name_en || p.id : p.name_zh || p.id, h("div.muted", p.id)),
        h("td", p.version),
        h("td", p.previous || "—"),
        h("td", p.publisher),
        h("td", p.signed ? t("yes") : t("no")),
        h(
          "td",
          p.previous
            ? h("button.secondary", {
                type: "button",
                "data-action": "rollback",
                onclick: () => {
                  if (!window.confirm(t("confirm_rollback", { plugin: p.id, version: p.previous }))) return;
                  LL.act(slot, async () => {
                    const r = await LL.api("POST", `/plugin-registry/${LL.enc(p.id)}/rollback`);
                    LL.flash = t("rolled_back", { plugin: p.id, version: r.version });
                    await LL.render();
                  });
                },
              }, t("rollback"))
            : null
        )
      )
    );
    box.append(
      items.length
        ? h("table#plugin-registry", h("thead", h("tr", h("th", t("module")), h("th", t("version")), h("th", t("previous")), h("th", t("publisher")), h("th", t("signed")), h("th", ""))), h("tbody", rows))
        : h("p.muted", t("no_plugins"))
    );
    const file = h("input#package-file", { type: "file", accept: ".llpkg,application/octet-stream" });
    const mode = h("select#upload-mode", { name: "mode" }, h("option", { value: "" }, t("install_new")), items.map((p) => h("option", { value: p.id }, t("upgrade_of", { plugin: p.id }))));
    const form = h(
      "form.inline#upload-form",
      {
        onsubmit: (e) => {
          e.preventDefault();
          LL.act(slot, async () => {
            const f = file.files && file.files[0];
            if (!f) throw new Error(t("choose_file"));
            const body = await f.arrayBuffer();
            const path = mode.value ? `/plugin-registry/${LL.enc(mode.value)}/upgrade` : "/plugin-registry";
            const r = await LL.api("POST", path, { body, type: "application/octet-stream" });
            LL.flash = pendingNote(r) || t(mode.value ? "upgraded_ok" : "installed_ok", { plugin: r.id, version: r.version });
            await LL.render();
          });
        },
      },
      LL.field(t("package_file"), file),
      LL.field(t("upload_mode"), mode),
      h("button#upload-button", { type: "submit" }, t("do_upload"))
    );
    box.append(h("h3", t("upload")), form, slot);

    if (!LL.me.isCityAdmin) return;
    const trust = LL.card(t("trust_store"));
    trust.id = "trust-store";
    view.append(trust);
    const tslot = h("div", { "aria-live": "polite" });
    try {
      const pubs = (await LL.api("GET", "/plugin-publishers")).items;
      const list = (v) => (v === null || v === undefined ? t("no_ceiling") : v.length ? v.join(", ") : t("none"));
      trust.append(
        pubs.length
          ? h(
              "table#publishers",
              h("thead", h("tr", h("th", t("publisher")), h("th", t("public_key")), h("th", t("bound_site")), h("th", t("cap_ceiling")), h("th", t("role_ceiling")), h("th", t("needs_approval")), h("th", t("status")), h("th", ""))),
              h(
                "tbody",
                pubs.map((p) =>
                  h(
                    "tr",
                    { "data-publisher": p.publisher, "data-status": p.status },
                    h("td", p.publisher),
                    h("td", h("code", p.public_key)),
                    h("td", p.site || t("city_wide")),
                    h("td", list(p.capabilities)),
                    h("td", list(p.roles)),
                    h("td", p.approval ? t("yes") : t("no")),
                    h("td", h("span.badge." + (p.status === "trusted" ? "on" : "bad"), t("pub_" + p.status))),
                    h(
                      "td",
                      p.status === "trusted"
                        ? h("button.danger", {
                            type: "button",
                            "data-action": "revoke",
                            onclick: () => {
                              if (!window.confirm(t("confirm_revoke", { publisher: p.publisher }))) return;
                              LL.act(tslot, async () => {
                                const r = await LL.api("POST", `/plugin-publishers/${LL.enc(p.publisher)}/revoke`);
                                LL.flash = t("revoked_ok", { publisher: p.publisher, n: (r && r.disabled && r.disabled.length) || 0 });
                                await LL.render();
                              });
                            },
                          }, t("revoke"))
                        : null
                    )
                  )
                )
              )
            )
          : h("p.muted", t("no_publishers"))
      );
    } catch (e) {
      trust.append(LL.problemBox(e));
    }
    const pub = h("input", { name: "publisher", size: 16 });
    const key = h("input", { name: "public_key", size: 66 });
    const bsite = h("input", { name: "site", size: 10 });
    const cityWide = h("input", { name: "city_wide", type: "checkbox" });
    const caps = h("input", { name: "capabilities", size: 40, placeholder: "sites.read, accounts.record" });
    const roles = h("input", { name: "roles", size: 20 });
    const approval = h("select", { name: "approval" }, h("option", { value: "" }, t("keep_value")), h("option", { value: "yes" }, t("yes")), h("option", { value: "no" }, t("no")));
    const split = (v) => v.split(",").map((x) => x.trim()).filter((x) => x);
    trust.append(
      h(
        "form.inline#trust-form",
        {
          onsubmit: (e) => {
            e.preventDefault();
            LL.act(tslot, async () => {
              // Only the fields filled in are sent: one left out keeps its value.
              const body = { public_key: key.value.trim() };
              if (cityWide.checked) body.site = null;
              else if (bsite.value.trim()) body.site = bsite.value.trim();
              if (caps.value.trim()) body.capabilities = split(caps.value);
              if (roles.value.trim()) body.roles = split(roles.value);
              if (approval.value) body.approval = approval.value === "yes";
              await LL.api("PUT", `/plugin-publishers/${LL.enc(pub.value.trim())}`, { json: body });
              LL.flash = t("trusted_ok", { publisher: pub.value.trim() });
              await LL.render();
            });
          },
        },
        LL.field(t("publisher"), pub),
        LL.field(t("public_key"), key),
        LL.field(t("bound_site_opt"), bsite),
        h("label.check", cityWide, t("make_city_wide")),
        LL.field(t("cap_ceiling_opt"), caps),
        LL.field(t("role_ceiling_opt"), roles),
        LL.field(t("needs_approval"), approval),
        h("button", { type: "submit" }, t("trust"))
      ),
      h("p.muted", t("trust_hint")),
      tslot
    );
  }

  LL.pages.modules = async function (view, args, params) {
    const site = params.site || LL.me.top;
    view.append(...LL.heading(t("modules_title"), t("modules_sub", { site })));
    if (LL.flash) {
      view.append(LL.notice(LL.flash));
      LL.flash = null;
    }
    view.append(LL.siteForm(site, (code) => LL.go("#/modules?site=" + LL.enc(code))));
    const list = h("div#site-plugins");
    view.append(list);
    try {
      const r = await LL.api("GET", `/sites/${LL.enc(site)}/plugins`);
      list.append(...(r.items.length ? r.items.map((p) => pluginCard(p, site)) : [h("p.muted", t("no_plugins"))]));
    } catch (e) {
      list.append(LL.problemBox(e));
    }
    // The registry and upload are shown to every admin and the API decides
    // (a bound institution publisher's admins may upload their own plugins);
    // the trust store answers city admins only, so only they get its form.
    await registry(view);
    await approvals(view, params);
  };
})();
