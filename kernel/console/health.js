// Plugin health: per plugin on this node, calls, errors by kind, latency and
// recent logs (GET /plugin-registry/{id}/metrics and /logs), usage against
// its quotas (GET /plugin-registry/{id}, `quota`), and parked
// event deliveries with replay (GET /plugin-deliveries/parked, POST …/replay).
// These routes are for city admins; anyone else sees the API's refusal.
(function () {
  const LL = window.LL;
  const h = LL.h;
  const t = (k, v) => LL.t(k, v);

  function metrics(m) {
    if (!m.items.length) return h("p.muted", t("no_calls"));
    return m.items.slice().reverse().map((v) => {
      const errs = Object.entries(v.errors).filter(([, n]) => n > 0);
      const total = errs.reduce((a, [, n]) => a + n, 0);
      const maxB = Math.max(1, ...v.latency.buckets.map((b) => b.calls));
      const hist = LL.s(
        "svg",
        { class: "chart hist", viewBox: "0 0 600 90", role: "img", "aria-label": t("latency_hist") },
        v.latency.buckets.map((b, i) => {
          const hgt = (60 * b.calls) / maxB;
          const r = LL.s("rect", { x: 8 + i * 39, y: 66 - hgt, width: 30, height: Math.max(hgt, 0.5), fill: "#1d5fa8", rx: 2 });
          r.append(LL.s("title", {}, `≤ ${b.le_seconds * 1000} ms: ${b.calls}`));
          return [r, LL.s("text", { x: 23 + i * 39, y: 82, "font-size": 9, "text-anchor": "middle", fill: "#5b6878" }, b.le_seconds >= 1 ? b.le_seconds + "s" : b.le_seconds * 1000 + "")];
        })
      );
      return h(
        "div.version",
        { "data-version": v.version },
        h("h3", t("version") + " " + v.version),
        h(
          "div",
          h("span.stat", h("b.calls", LL.fmtNum(v.calls)), h("span", t("calls"))),
          h("span.stat", h("b", LL.fmtNum(total)), h("span", t("errors"))),
          h("span.stat", h("b", LL.fmtNum(v.latency.mean_ms, 2) + " ms"), h("span", t("latency"))),
          h("span.stat", h("b", LL.fmtNum(v.peak_memory_bytes / 1048576, 1) + " MiB"), h("span", t("peak_memory"))),
          h("span.stat", h("b", LL.fmtNum(v.retries)), h("span", t("retries"))),
          h("span.stat", h("b", LL.fmtNum(v.delivered)), h("span", t("delivered"))),
          h("span.stat", h("b", LL.fmtNum(v.dead_lettered)), h("span", t("dead_lettered")))
        ),
        h("h3", t("errors_by_kind")),
        errs.length ? h("table.errors", h("tbody", errs.map(([k, n]) => h("tr", h("td", h("code", k)), h("td.num", n))))) : h("p.muted", t("no_errors")),
        h("h3", t("latency_hist") + " (ms)"),
        hist
      );
    });
  }

  // Usage against the plugin's quotas (the registry entry's `quota`): used,
  // quota and the share used, with a bar. Per-site and per-minute quotas
  // count the busiest site (the per-site lists are the city's to see).
  // The share as a bar (set through the CSSOM: the CSP allows no inline style).
  function bar(pct, share) {
    const b = h("div.bar" + (pct >= 0.9 ? ".behind" : ""), { role: "img", "aria-label": LL.fmtPct(share) }, h("span"));
    b.firstChild.style.width = (pct * 100).toFixed(1) + "%";
    return b;
  }

  function quotaTable(q) {
    const top = (list, f) => (list && list.length ? Math.max(...list.map(f)) : null);
    const used = {
      rows: q.stored.rows,
      bytes: q.stored.bytes,
      site_rows: top(q.top_sites, (s) => s.rows),
      site_bytes: top(q.top_sites, (s) => s.bytes),
      calls_per_minute: top(q.this_minute.calls, (c) => c.calls),
      events_per_minute: q.this_minute.events,
      log_lines_per_minute: q.this_minute.log_lines,
    };
    return h(
      "table.quota",
      h("caption.sr-only", t("quota_usage")),
      h("thead", h("tr", h("th", t("quota")), h("th.num", t("used")), h("th.num", t("limit")), h("th", t("share_used")))),
      h(
        "tbody",
        Object.keys(used).map((k) => {
          const share = q.share ? q.share[k] : undefined;
          const pct = share === undefined || share === null ? null : Math.min(1, share);
          return h(
            "tr",
            { "data-quota": k },
            h("td", t("q_" + k)),
            h("td.num", LL.fmtNum(used[k])),
            h("td.num", LL.fmtNum(q.quotas[k])),
            h(
              "td",
              pct === null
                ? "—"
                : [bar(pct, share), h("span.muted", LL.fmtPct(share))]
            )
          );
        })
      )
    );
  }

  LL.pages.health = async function (view) {
    view.append(...LL.heading(t("health_title"), t("health_sub")));
    if (LL.flash) {
      view.append(LL.notice(LL.flash));
      LL.flash = null;
    }
    const parkedCard = LL.card(t("parked"));
    parkedCard.id = "parked";
    let plugins;
    try {
      plugins = (await LL.api("GET", "/plugin-registry")).items;
    } catch (e) {
      view.append(LL.problemBox(e));
      return;
    }
    for (const p of plugins) {
      const card = LL.card(LL.lang === "en" ? `${p.name_en || p.id} (${p.id})` : `${p.name_zh || p.id}（${p.id}）`);
      card.dataset.plugin = p.id;
      view.append(card);
      try {
        card.append(...[].concat(metrics(await LL.api("GET", `/plugin-registry/${LL.enc(p.id)}/metrics`))));
      } catch (e) {
        card.append(LL.problemBox(e));
        continue;
      }
      try {
        const entry = await LL.api("GET", `/plugin-registry/${LL.enc(p.id)}`);
        card.append(h("h3", t("quota_usage")), entry.quota ? quotaTable(entry.quota) : h("p.muted", t("no_quota")));
      } catch (e) {
        card.append(LL.problemBox(e));
      }
      try {
        const logs = (await LL.api("GET", `/plugin-registry/${LL.enc(p.id)}/logs${LL.qs({ limit: 30 })}`)).items;
        card.append(
          h("h3", t("recent_logs")),
          logs.length
            ? h("pre.log", logs.map((l) => `${LL.fmtTime(l.at)} ${l.level.toUpperCase().padEnd(5)} ${l.site} ${l.message}\n`).join(""))
            : h("p.muted", t("no_logs"))
        );
      } catch (e) {
        card.append(LL.problemBox(e));
      }
    }
    view.append(parkedCard);
    const slot = h("div", { "aria-live": "polite" });
    try {
      const items = (await LL.api("GET", "/plugin-deliveries/parked")).items;
      parkedCard.append(
        items.length
          ? h(
              "table#parked-deliveries",
              h("thead", h("tr", h("th", t("event")), h("th", t("subscriber")), h("th.num", t("attempts")), h("th", t("last_error")), h("th", t("parked_at")), h("th", ""))),
              h(
                "tbody",
                items.map((d) =>
                  h(
                    "tr",
                    h("td", `${d.event_id} · ${d.name}`),
                    h("td", d.subscriber),
                    h("td.num", d.attempts),
                    h("td", d.last_error || "—"),
                    h("td", LL.fmtTime(d.dead_at)),
                    h(
                      "td",
                      h("button.secondary", {
                        type: "button",
                        onclick: () =>
                          LL.act(slot, async () => {
                            await LL.api("POST", `/plugin-deliveries/${LL.enc(d.event_id)}/${LL.enc(d.subscriber)}/replay`);
                            LL.flash = t("replayed_ok", { event: d.event_id, subscriber: d.subscriber });
                            await LL.render();
                          }),
                      }, t("replay"))
                    )
                  )
                )
              )
            )
          : h("p.muted", t("no_parked")),
        slot
      );
    } catch (e) {
      parkedCard.append(LL.problemBox(e));
    }
  };
})();
