// Dashboard: the ten plan indicators for a site's subtree (GET /indicators),
// progress per sub-site and the month-end series of a chosen indicator
// (GET /indicators/{id}/series), and 15-minute learning circles with the
// uncovered communities on a dot map (GET /circles, GET /sites).
(function () {
  const LL = window.LL;
  const h = LL.h;
  const t = (k, v) => LL.t(k, v);
  const unit = (i) => (LL.lang === "en" ? i.unit_en : i.unit_zh) || "";
  const ADMIN_KINDS = ["city", "township", "village", "walking_point"];

  function sourceName(src) {
    if (!src) return "—";
    if (src === "kernel") return t("source_kernel");
    return src.replace(/^plugin:/, "");
  }

  function indicatorCard(i, key) {
    const progress = i.progress;
    const bar = h("div.bar", h("span"));
    const expected = expectedShare(i);
    if (progress !== null && progress !== undefined) {
      bar.firstChild.style.width = Math.min(100, Math.max(0, progress * 100)) + "%";
      if (expected !== null && progress < expected) bar.classList.add("behind");
    }
    return h(
      "article.ind-card",
      { "data-indicator": key, "aria-labelledby": "ind-" + key },
      h("div", h("span.id", String(key).length > 3 ? "+" : key), h("span.name", { id: "ind-" + key }, LL.nameOf(i))),
      h("div.value", i.value === null || i.value === undefined ? "—" : LL.fmtNum(i.value), h("small", unit(i))),
      i.error ? h("div.err", i.error) : null,
      progress === null || progress === undefined ? h("div.meta", t("no_target")) : [bar, h("div.meta", t("progress") + " " + LL.fmtPct(progress))],
      h(
        "div.meta",
        i.target_kind === "level"
          ? `${t("target_level")} ${LL.fmtNum(i.target_2030)}`
          : `${t("baseline")} ${LL.fmtNum(i.baseline)} · ${t("increase")} ${LL.fmtNum(i.increase)} · ${t("target_2030")} ${LL.fmtNum(i.target_2030)}`
      ),
      h("div.meta", `${t("source")}${LL.lang === "en" ? ": " : "："}${sourceName(i.source)}`)
    );
  }

  function expectedShare(i) {
    if (i.target_kind === "level") return null;
    if (i.target_this_year === null || i.target_this_year === undefined || !i.target_2030) return null;
    return i.target_this_year / i.target_2030;
  }

  async function charts(box, site, ind, all) {
    const select = h(
      "select#indicator-choice",
      { name: "indicator" },
      all.map((i) => h("option", { value: String(i.id), selected: String(i.id) === String(ind.id) }, `${i.id}. ${LL.nameOf(i)}`))
    );
    select.addEventListener("change", () => LL.go(`#/dashboard?${new URLSearchParams({ site, ind: select.value })}`));
    const byChild = LL.card(t("by_township"));
    const series = LL.card(t("series"));
    box.replaceChildren(h("form.inline", { onsubmit: (e) => e.preventDefault() }, LL.field(t("choose_indicator"), select)), h("div.grid.two", byChild, series));

    byChild.append(h("p.sub", t("by_township_sub", { name: LL.nameOf(ind) })));
    const kids = ind.children || [];
    if (!kids.length) byChild.append(h("p.muted", t("no_children")));
    else {
      const rows = kids.map((c) => ({
        label: LL.nameOf(c),
        value: ind.target_kind === "level" ? (c.value === null || c.value === undefined || !c.target_2030 ? c.progress : c.value / c.target_2030) : c.progress,
        note: c.error || t("no_target"),
        title: `${LL.nameOf(c)}: ${t("value")} ${LL.fmtNum(c.value)}, ${t("increase")} ${LL.fmtNum(c.increase)}, ${t("target_2030")} ${LL.fmtNum(c.target_2030)}`,
      }));
      const expected = expectedShare(ind);
      byChild.append(LL.progressChart(rows, expected, t("by_township_sub", { name: LL.nameOf(ind) })));
      byChild.append(LL.legend([["ok", t("progress")], ["warn", t("progress") + " < " + t("expected_now")], ["target", t("expected_now")]]));
    }

    series.append(h("p.sub", t("series_sub", { name: LL.nameOf(ind) })));
    try {
      const r = await LL.api("GET", `/indicators/${LL.enc(ind.id)}/series${LL.qs({ site, interval: "month" })}`);
      const points = (r.points || []).map((p) => ({
        year: p.year,
        label: p.date ? p.date.slice(0, 7) : String(p.year),
        value: p.value,
        target:
          p.target === null || p.target === undefined
            ? null
            : ind.target_kind === "level"
            ? p.target
            : (p.baseline || 0) + p.target,
      }));
      if (!points.length) series.append(h("p.muted", t("no_series")));
      else {
        series.append(LL.seriesChart(points, t("series_sub", { name: LL.nameOf(ind) })));
        series.append(LL.legend([["brand", t("series_value")], ["target", t("series_target")]]));
      }
    } catch (e) {
      series.append(LL.problemBox(e));
    }
  }

  async function circles(card, site) {
    let c;
    try {
      c = await LL.api("GET", `/circles${LL.qs({ site })}`);
    } catch (e) {
      card.append(LL.problemBox(e));
      return;
    }
    card.append(h("p.sub", t("circles_sub", { d: c.distance_m, share: Math.round((c.share || 0) * 100), n: c.circles })));
    const towns = c.townships || [];
    const table = h(
      "table.circles",
      h("thead", h("tr", h("th", t("township")), h("th.num", t("communities")), h("th.num", t("covered")), h("th.num", t("coverage")), h("th", t("is_circle")))),
      h(
        "tbody",
        towns.map((tw) =>
          h(
            "tr",
            h("td", LL.nameOf(tw), h("span.muted", " " + tw.site)),
            h("td.num", LL.fmtNum(tw.communities)),
            h("td.num", LL.fmtNum(tw.covered)),
            h("td.num", LL.fmtPct(tw.coverage)),
            h("td", tw.circle ? h("span.badge.on", t("yes")) : h("span.badge.off", t("no")))
          )
        )
      )
    );
    const unc = c.uncovered || [];
    const list = unc.length
      ? h(
          "table.uncovered",
          h("caption.sr-only", t("uncovered")),
          h("thead", h("tr", h("th", t("uncovered")), h("th", t("township")), h("th", t("nearest")), h("th.num", t("distance")))),
          h(
            "tbody",
            unc.map((u) =>
              h(
                "tr",
                h("td", LL.nameOf(u), h("span.muted", " " + u.site)),
                h("td", u.township || "—"),
                h("td", u.nearest ? (LL.lang === "en" ? `${LL.nameOf(u.nearest)} (${LL.kindName(u.nearest.kind)})` : `${LL.nameOf(u.nearest)}（${LL.kindName(u.nearest.kind)}）`) : "—"),
                h("td.num", u.nearest ? LL.fmtNum(u.nearest.distance_m) + " m" : "—")
              )
            )
          )
        )
      : h("p.muted", t("no_uncovered"));

    // Context for the map: the subtree's sites with coordinates.
    const dots = [];
    const uncoveredCodes = new Set(unc.map((u) => u.site));
    try {
      let cursor = null;
      for (let page = 0; page < 8; page++) {
        const r = await LL.api("GET", `/sites${LL.qs({ within: site, status: "active", limit: 500, cursor })}`);
        for (const x of r.items) {
          if (x.latitude === null || x.longitude === null || x.latitude === undefined) continue;
          if (uncoveredCodes.has(x.code)) continue;
          if (x.kind === "village") dots.push({ lat: x.latitude, lon: x.longitude, kind: "community", label: LL.nameOf(x) });
          else if (!ADMIN_KINDS.includes(x.kind)) dots.push({ lat: x.latitude, lon: x.longitude, kind: "site", label: LL.nameOf(x) });
        }
        cursor = r.next_cursor;
        if (!cursor) break;
      }
    } catch (e) {
      /* the map then shows the uncovered communities alone */
    }
    for (const u of unc) {
      if (u.latitude !== null && u.latitude !== undefined) dots.push({ lat: u.latitude, lon: u.longitude, kind: "uncovered", label: LL.nameOf(u) });
    }
    const map = h(
      "div",
      h("h3", t("map")),
      dots.length ? LL.dotMap(dots, t("map")) : h("p.muted", t("no_coords")),
      LL.legend([["bad", t("map_legend_uncovered")], ["ok", t("map_legend_site")], ["grey", t("map_legend_community")]])
    );
    card.append(h("div.grid.two", h("div", table, h("h3", { style: null }, t("uncovered")), list), map));
  }

  LL.pages.dashboard = async function (view, args, params) {
    const site = params.site || LL.me.top;
    const asOf = params.as_of || "";
    const head = h("div");
    view.append(head);
    const asOfInput = h("input", { type: "date", name: "as_of", value: asOf });
    view.append(
      LL.siteForm(site, (code) => LL.go(`#/dashboard?${new URLSearchParams(Object.assign({ site: code }, asOfInput.value ? { as_of: asOfInput.value } : {}))}`), LL.field(t("as_of"), asOfInput))
    );
    const indCard = LL.card(t("ten_indicators"));
    const chartBox = h("div");
    const circleCard = LL.card(t("circles"));
    view.append(indCard, chartBox, circleCard);
    let data = null;
    try {
      data = await LL.api("GET", `/indicators${LL.qs({ site, as_of: asOf })}`);
    } catch (e) {
      head.replaceChildren(...LL.heading(t("dash_title")));
      indCard.append(LL.problemBox(e));
    }
    const circlesDone = circles(circleCard, site);
    if (data) {
      head.replaceChildren(
        ...LL.heading(t("dash_title"), t("dash_sub", { site: data.site, start: data.period && data.period.start, end: data.period && data.period.end, as_of: data.as_of }))
      );
      const inds = (data.indicators || []).slice().sort((a, b) => a.id - b.id);
      indCard.append(h("div.grid.ind#indicators", inds.map((i) => indicatorCard(i, i.id))));
      if ((data.extra || []).length) {
        indCard.append(h("h3", { class: "extra-title" }, t("extra_indicators")));
        indCard.append(h("div.grid.ind#extra-indicators", data.extra.map((i) => indicatorCard(i, i.key))));
      }
      const chosen = inds.find((i) => String(i.id) === String(params.ind)) || inds.find((i) => i.id === 4) || inds[0];
      if (chosen) await charts(chartBox, data.site || site, chosen, inds);
    }
    await circlesDone;
  };
})();
