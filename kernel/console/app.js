// The shell: sign-in, the navigation, the language switch and a hash router
// (#/page/arg?key=value). Each page in LL.pages renders into <main>.
(function () {
  const LL = window.LL;
  const h = LL.h;
  const t = (k, v) => LL.t(k, v);
  LL.pages = LL.pages || {};
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const NAV = [
    ["dashboard", "nav_dashboard"],
    ["sites", "nav_sites"],
    ["persons", "nav_persons"],
    ["modules", "nav_modules"],
    ["health", "nav_health"],
    ["audit", "nav_audit"],
  ];

  window.addEventListener("error", (e) => {
    const box = document.getElementById("js-error");
    box.textContent = t("js_error", { msg: e.message });
    box.hidden = false;
  });
  window.addEventListener("unhandledrejection", (e) => {
    const box = document.getElementById("js-error");
    box.textContent = t("js_error", { msg: String(e.reason && e.reason.message ? e.reason.message : e.reason) });
    box.hidden = false;
  });

  // The signed-in person and what it may administer.
  async function loadMe() {
    const me = await LL.api("GET", "/me");
    const roles = me.roles || [];
    const city = roles.find((r) => r.role === "city_admin");
    const admin = roles.find((r) => r.role === "site_admin");
    me.isCityAdmin = !!city;
    me.top = (city || admin || {}).site_code || me.person.home_site_code;
    LL.me = me;
    return me;
  }

  function route() {
    const raw = (location.hash || "").replace(/^#\/?/, "");
    const [pathPart, query] = raw.split("?");
    const parts = pathPart.split("/").filter(Boolean).map(decodeURIComponent);
    const params = {};
    new URLSearchParams(query || "").forEach((v, k) => (params[k] = v));
    return { page: parts[0] || "dashboard", args: parts.slice(1), params };
  }
  LL.go = function (hash) {
    if (location.hash === hash) render();
    else location.hash = hash;
  };

  function chrome() {
    document.title = t("brand");
    document.getElementById("brand-name").textContent = t("brand");
    document.getElementById("skip-link").textContent = t("skip");
    nav.setAttribute("aria-label", t("nav"));
    const sw = document.getElementById("lang-switch");
    sw.textContent = t("switch_lang");
    sw.setAttribute("lang", LL.lang === "en" ? "zh-CN" : "en");
    const out = document.getElementById("sign-out");
    out.textContent = t("sign_out");
    out.hidden = !LL.me;
    nav.hidden = !LL.me;
    const who = document.getElementById("who");
    if (LL.me) {
      const roles = (LL.me.roles || []).map((r) => LL.roleName(r.role) + " · " + r.site_code).join(LL.lang === "en" ? ", " : "，");
      who.textContent = LL.me.person.name + (roles ? (LL.lang === "en" ? " (" + roles + ")" : "（" + roles + "）") : "");
    } else who.textContent = "";
    const { page } = route();
    nav.replaceChildren(
      h("ul", NAV.map(([id, key]) => h("li", h("a", { href: "#/" + id, "aria-current": page === id ? "page" : null, id: "nav-" + id }, t(key)))))
    );
  }

  function signInPage(message) {
    chrome();
    const login = h("input", { id: "login", name: "login", autocomplete: "username", required: true });
    const password = h("input", { id: "password", name: "password", type: "password", autocomplete: "current-password", required: true });
    const slot = h("div", { "aria-live": "polite" }, message ? LL.notice(message) : null);
    const form = h(
      "form#sign-in",
      {
        onsubmit: async (e) => {
          e.preventDefault();
          await LL.act(slot, async () => {
            await LL.signIn(login.value.trim(), password.value);
            await loadMe();
            const r = route();
            if (r.page === "signin") location.hash = "#/dashboard";
            else render();
          });
        },
      },
      h("label", { for: "login" }, t("login"), login),
      h("label", { for: "password" }, t("password"), password),
      h("button", { type: "submit", id: "sign-in-button" }, t("sign_in"))
    );
    main.replaceChildren(
      h("div.signin.card", LL.heading(t("sign_in_title"), t("sign_in_sub")), slot, form)
    );
    login.focus();
  }

  let renderSeq = 0;
  async function render() {
    const seq = ++renderSeq;
    if (!LL.token) return signInPage();
    if (!LL.me) {
      try {
        await loadMe();
      } catch (e) {
        return signInPage(e.status === 401 ? t("session_expired") : null);
      }
    }
    chrome();
    const r = route();
    const page = LL.pages[r.page] || LL.pages.dashboard;
    const view = h("div.page", { "data-page": r.page });
    main.replaceChildren(view);
    main.setAttribute("aria-busy", "true");
    try {
      await page(view, r.args, r.params);
    } catch (e) {
      view.append(LL.problemBox(e));
    }
    if (seq !== renderSeq) return;
    main.setAttribute("aria-busy", "false");
    main.dataset.ready = r.page + "|" + (r.args.join("/") || "") + "|" + new URLSearchParams(r.params).toString() + "|" + LL.lang;
    const heading = document.getElementById("page-title");
    if (LL.focusHeading && heading) heading.focus();
    LL.focusHeading = false;
  }
  LL.render = render;
  LL.onExpired = () => {
    LL.token = null;
    LL.me = null;
    sessionStorage.removeItem("ll.token");
    signInPage(t("session_expired"));
  };

  window.addEventListener("hashchange", () => {
    LL.focusHeading = true;
    render();
  });
  document.getElementById("lang-switch").addEventListener("click", () => {
    LL.setLang(LL.lang === "en" ? "zh" : "en");
    render();
  });
  document.getElementById("sign-out").addEventListener("click", async () => {
    await LL.signOut();
    location.hash = "#/dashboard";
    signInPage(t("signed_out"));
  });

  LL.setLang(LL.lang);
  render();
})();
