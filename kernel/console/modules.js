// Modules: at a site, each installed plugin enabled here, inherited from
// above or off, the capabilities it asks for with what they mean, grant and
// enable/disable (GET /sites/{site}/plugins, PUT /plugin-registry/{id}/sites/
// {site}/grants and …/enabled); the registry with package upload (install or
// upgrade) and rollback; for city admins, the publisher trust store.
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
        await LL.api("PUT", `/plugin-registry/${LL.enc(p.id)}/sites/${LL.enc(site)}/enabled`, { json: { enabled: on } });
        LL.flash = t(on ? "enabled_ok" : "disabled_ok", { plugin: name, site });
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
            LL.flash = t(mode.value ? "upgraded_ok" : "installed_ok", { plugin: r.id, version: r.version });
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
      trust.append(
        pubs.length
          ? h("table#publishers", h("thead", h("tr", h("th", t("publisher")), h("th", t("public_key")))), h("tbody", pubs.map((p) => h("tr", h("td", p.publisher), h("td", h("code", p.public_key))))))
          : h("p.muted", t("no_publishers"))
      );
    } catch (e) {
      trust.append(LL.problemBox(e));
    }
    const pub = h("input", { name: "publisher", size: 16 });
    const key = h("input", { name: "public_key", size: 66 });
    trust.append(
      h(
        "form.inline#trust-form",
        {
          onsubmit: (e) => {
            e.preventDefault();
            LL.act(tslot, async () => {
              await LL.api("PUT", `/plugin-publishers/${LL.enc(pub.value.trim())}`, { json: { public_key: key.value.trim() } });
              LL.flash = t("trusted_ok", { publisher: pub.value.trim() });
              await LL.render();
            });
          },
        },
        LL.field(t("publisher"), pub),
        LL.field(t("public_key"), key),
        h("button", { type: "submit" }, t("trust"))
      ),
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
  };
})();
