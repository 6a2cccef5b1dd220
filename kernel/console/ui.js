// DOM helpers. Every piece of data goes into the page as text nodes or
// attributes (never as HTML), so nothing the API returns can inject markup.
(function () {
  const LL = window.LL;
  const SVG = "http://www.w3.org/2000/svg";

  function append(el, kids) {
    for (const k of kids) {
      if (k === null || k === undefined || k === false) continue;
      if (Array.isArray(k)) append(el, k);
      else if (k instanceof Node) el.appendChild(k);
      else el.appendChild(document.createTextNode(String(k)));
    }
  }
  function set(el, attrs, svg) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "class") el.setAttribute("class", v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (!svg && (k === "value" || k === "checked" || k === "selected")) el[k] = v;
      else el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  // h("tag.class#id", {attrs}, ...children)
  LL.h = function (spec, attrs, ...kids) {
    const m = spec.match(/^([a-z0-9]+)((?:[.#][\w-]+)*)$/i);
    const el = document.createElement(m ? m[1] : spec);
    if (m && m[2]) {
      for (const part of m[2].match(/[.#][\w-]+/g)) {
        if (part[0] === ".") el.classList.add(part.slice(1));
        else el.id = part.slice(1);
      }
    }
    if (attrs && (attrs instanceof Node || Array.isArray(attrs) || typeof attrs !== "object")) {
      kids.unshift(attrs);
      attrs = null;
    }
    set(el, attrs, false);
    append(el, kids);
    return el;
  };
  LL.s = function (tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    set(el, attrs, true);
    append(el, kids);
    return el;
  };
  const h = LL.h;
  const t = (k, v) => LL.t(k, v);

  // A problem+json answer, shown as the API said it.
  LL.problemBox = function (err) {
    if (!(err instanceof LL.Problem)) {
      return h("div.problem", { role: "alert" }, h("strong", t("problem")), String(err && err.message ? err.message : err));
    }
    const rows = err.errors.map((e) => {
      const m = /^line (\d+): (.*)$/.exec(e.field || "");
      return h("tr", m ? [h("td.num", m[1]), h("td", m[2])] : [h("td", ""), h("td", e.field || "")], h("td", e.message || ""));
    });
    const isRows = err.errors.some((e) => /^line \d+: /.test(e.field || ""));
    return h(
      "div.problem",
      { role: "alert", "data-status": err.status, "data-type": err.type },
      h("strong", (err.title || t("problem")) + (err.status ? " · " + t("http_status", { status: err.status }) : "")),
      err.detail ? h("div.detail", err.detail) : null,
      rows.length
        ? h(
            "table.row-errors",
            h("caption.sr-only", t("row_errors")),
            h("thead", h("tr", h("th.num", isRows ? t("line") : ""), h("th", isRows ? t("column") : t("field")), h("th", t("message")))),
            h("tbody", rows)
          )
        : null
    );
  };
  LL.notice = (text) => h("div.notice", { role: "status" }, text);

  // Run an async action, putting its outcome (or the problem) into `slot`.
  LL.act = async function (slot, fn) {
    slot.replaceChildren();
    try {
      const msg = await fn();
      if (msg) slot.replaceChildren(typeof msg === "string" ? LL.notice(msg) : msg);
    } catch (e) {
      slot.replaceChildren(LL.problemBox(e));
    }
  };

  // A labelled field: label(text, input).
  LL.field = (text, input) => h("label", text, input);
  LL.fmtNum = function (v, digits) {
    if (v === null || v === undefined || Number.isNaN(v)) return "—";
    const n = Number(v);
    const d = digits === undefined ? (Number.isInteger(n) ? 0 : 2) : digits;
    return n.toLocaleString(LL.lang === "en" ? "en-US" : "zh-CN", { maximumFractionDigits: d, minimumFractionDigits: 0 });
  };
  LL.fmtPct = (v) => (v === null || v === undefined ? "—" : LL.fmtNum(v * 100, 1) + "%");
  LL.fmtTime = function (micros) {
    if (!micros) return "—";
    const d = new Date(micros / 1000);
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  };
  LL.today = function () {
    const d = new Date();
    const p = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}`;
  };
  LL.heading = (title, sub) => [h("h1", { id: "page-title", tabindex: "-1" }, title), sub ? h("p.sub", sub) : null];
  LL.card = (title, ...kids) => h("section.card", title ? h("h2", title) : null, ...kids);

  // A site chooser form: code input + submit; calls go(code).
  LL.siteForm = function (code, go, extra) {
    const input = h("input", { name: "site", value: code || "", size: 12, autocomplete: "off" });
    return h(
      "form.inline.site-form",
      { onsubmit: (e) => { e.preventDefault(); go(input.value.trim()); } },
      LL.field(t("site_code"), input),
      extra || null,
      h("button", { type: "submit" }, t("show"))
    );
  };
})();
