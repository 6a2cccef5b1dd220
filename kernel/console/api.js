// The one way the console talks to the server: the public /api/v1 with the
// bearer token from /api/v1/auth/login. A non-2xx answer becomes an
// LL.Problem carrying the RFC 9457 problem+json the API returned.
(function () {
  const LL = window.LL;
  LL.token = sessionStorage.getItem("ll.token");

  class Problem extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || "HTTP " + status);
      this.status = status;
      this.title = (body && body.title) || "";
      this.detail = (body && body.detail) || "";
      this.type = (body && body.type) || "";
      this.errors = (body && Array.isArray(body.errors) && body.errors) || [];
    }
  }
  LL.Problem = Problem;

  // api(method, path, {json, body, type, raw}) → parsed JSON (or text / null).
  LL.api = async function (method, path, opts) {
    opts = opts || {};
    const headers = { Accept: "application/json, application/problem+json, text/csv" };
    if (LL.token) headers.Authorization = "Bearer " + LL.token;
    let body;
    if (opts.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.json);
    } else if (opts.body !== undefined) {
      headers["Content-Type"] = opts.type || "application/octet-stream";
      body = opts.body;
    }
    let res;
    try {
      res = await fetch("/api/v1" + path, { method, headers, body });
    } catch (e) {
      throw new Problem(0, { title: LL.t("network"), detail: String(e) });
    }
    const type = res.headers.get("Content-Type") || "";
    if (!res.ok) {
      let problem = null;
      try {
        problem = await res.json();
      } catch (e) {
        problem = { title: res.statusText };
      }
      const p = new Problem(res.status, problem);
      if (res.status === 401 && LL.token && path !== "/auth/logout") {
        LL.onExpired && LL.onExpired();
      }
      throw p;
    }
    if (res.status === 204) return null;
    if (opts.raw || !type.includes("json")) return await res.text();
    return await res.json();
  };

  // Query string from an object, skipping empty values.
  LL.qs = function (params) {
    const parts = [];
    for (const [k, v] of Object.entries(params || {})) {
      if (v === undefined || v === null || v === "") continue;
      parts.push(encodeURIComponent(k) + "=" + encodeURIComponent(v));
    }
    return parts.length ? "?" + parts.join("&") : "";
  };
  const enc = encodeURIComponent;
  LL.enc = enc;

  LL.signIn = async function (login, password) {
    const r = await LL.api("POST", "/auth/login", { json: { login, password } });
    LL.token = r.token;
    sessionStorage.setItem("ll.token", r.token);
    return r;
  };
  LL.signOut = async function () {
    try {
      if (LL.token) await LL.api("POST", "/auth/logout");
    } finally {
      LL.token = null;
      LL.me = null;
      sessionStorage.removeItem("ll.token");
    }
  };
})();
