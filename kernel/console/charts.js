// Small SVG charts drawn from API answers: horizontal progress bars, a
// month-end series, and a dot map projected from latitude/longitude.
(function () {
  const LL = window.LL;
  const s = LL.s;
  const C = { ok: "#1f7a4d", warn: "#d08a16", brand: "#1d5fa8", target: "#b3261e", grey: "#b9c4d0", bad: "#c62828" };

  // rows: [{label, value (0..n, a share), title}], expected: share expected now.
  LL.progressChart = function (rows, expected, label) {
    const rowH = 30, left = 150, right = 60, width = 640;
    const height = rows.length * rowH + 34;
    const max = Math.max(1, ...rows.map((r) => r.value || 0));
    const x = (v) => left + ((width - left - right) * Math.max(0, v)) / max;
    const svg = s("svg", { class: "chart progress-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
    svg.append(s("title", {}, label));
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      const gx = x(f * max);
      svg.append(s("line", { class: "gridline", x1: gx, x2: gx, y1: 4, y2: height - 24 }));
      svg.append(s("text", { x: gx, y: height - 8, "font-size": 11, "text-anchor": "middle", fill: "#5b6878" }, LL.fmtPct(f * max)));
    }
    rows.forEach((r, i) => {
      const y = 6 + i * rowH;
      svg.append(s("text", { x: left - 8, y: y + 15, "font-size": 12.5, "text-anchor": "end" }, r.label));
      if (r.value === null || r.value === undefined) {
        svg.append(s("text", { x: left + 4, y: y + 15, "font-size": 12, fill: "#b26a00" }, r.note || "—"));
        return;
      }
      const behind = expected !== null && expected !== undefined && r.value < expected;
      const bar = s("rect", { x: left, y: y + 3, width: Math.max(1, x(r.value) - left), height: rowH - 12, rx: 3, fill: behind ? C.warn : C.ok });
      bar.append(s("title", {}, r.title || r.label));
      svg.append(bar);
      svg.append(s("text", { x: x(r.value) + 6, y: y + 15, "font-size": 12 }, LL.fmtPct(r.value)));
    });
    if (expected !== null && expected !== undefined) {
      const ex = x(expected);
      svg.append(s("line", { x1: ex, x2: ex, y1: 2, y2: height - 24, stroke: C.target, "stroke-width": 2, "stroke-dasharray": "5 3" }));
    }
    return svg;
  };

  // points: [{year, label, value, target}] (month ends) — value line with dots, target dashed.
  LL.seriesChart = function (points, label) {
    const width = 640, height = 260, left = 56, right = 20, top = 16, bottom = 34;
    const vals = points.flatMap((p) => [p.value, p.target]).filter((v) => v !== null && v !== undefined);
    let max = Math.max(1, ...vals), min = Math.min(0, ...vals);
    if (max === min) max = min + 1;
    const n = points.length;
    const x = (i) => left + (n <= 1 ? (width - left - right) / 2 : ((width - left - right) * i) / (n - 1));
    const y = (v) => top + ((height - top - bottom) * (max - v)) / (max - min);
    const svg = s("svg", { class: "chart series-chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
    svg.append(s("title", {}, label));
    for (let k = 0; k <= 4; k++) {
      const v = min + ((max - min) * k) / 4;
      svg.append(s("line", { class: "gridline", x1: left, x2: width - right, y1: y(v), y2: y(v) }));
      svg.append(s("text", { x: left - 8, y: y(v) + 4, "font-size": 11, "text-anchor": "end", fill: "#5b6878" }, LL.fmtNum(v, 1)));
    }
    // Month-end points: label at most about twelve of them, always the last.
    const every = Math.max(1, Math.ceil(n / 12));
    const labelled = (i) => i === n - 1 || (i % every === 0 && n - 1 - i >= every);
    points.forEach((p, i) => {
      if (labelled(i)) svg.append(s("text", { x: x(i), y: height - 10, "font-size": 11, "text-anchor": "middle" }, p.label || String(p.year)));
    });
    const line = (key, attrs) => {
      const pts = points.map((p, i) => [i, p[key]]).filter(([, v]) => v !== null && v !== undefined);
      if (!pts.length) return;
      svg.append(s("polyline", Object.assign({ fill: "none", points: pts.map(([i, v]) => `${x(i)},${y(v)}`).join(" ") }, attrs)));
      for (const [i, v] of pts) {
        const dot = s("circle", { cx: x(i), cy: y(v), r: key === "value" ? 4.5 : 3, fill: attrs.stroke });
        dot.append(s("title", {}, `${points[i].label || points[i].year}: ${LL.fmtNum(v)}`));
        svg.append(dot);
        if (key === "value" && labelled(i)) svg.append(s("text", { x: x(i), y: y(v) - 9, "font-size": 11.5, "text-anchor": "middle", "font-weight": 600 }, LL.fmtNum(v)));
      }
    };
    line("target", { stroke: C.target, "stroke-width": 2, "stroke-dasharray": "6 4" });
    line("value", { stroke: C.brand, "stroke-width": 2.5 });
    return svg;
  };

  // dots: [{lat, lon, kind: "uncovered"|"site"|"community", label}]
  LL.dotMap = function (dots, label) {
    const width = 640, height = 420, pad = 24;
    const svg = s("svg", { class: "chart dot-map", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label });
    svg.append(s("title", {}, label));
    svg.append(s("rect", { x: 0, y: 0, width, height, fill: "#f7f9fb", stroke: "#dbe2ea" }));
    if (!dots.length) return svg;
    const lats = dots.map((d) => d.lat), lons = dots.map((d) => d.lon);
    let [la0, la1, lo0, lo1] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
    const midLat = (la0 + la1) / 2;
    const kx = Math.cos((midLat * Math.PI) / 180); // equirectangular: shrink longitude
    let w = (lo1 - lo0) * kx || 0.01, hh = la1 - la0 || 0.01;
    const scale = Math.min((width - 2 * pad) / w, (height - 2 * pad) / hh);
    const ox = (width - w * scale) / 2, oy = (height - hh * scale) / 2;
    const px = (d) => ox + (d.lon - lo0) * kx * scale;
    const py = (d) => height - oy - (d.lat - la0) * scale;
    const order = { community: 0, site: 1, uncovered: 2 };
    for (const d of dots.slice().sort((a, b) => order[a.kind] - order[b.kind])) {
      const attrs =
        d.kind === "uncovered"
          ? { r: 6, fill: C.bad, stroke: "#fff", "stroke-width": 1.5, class: "uncovered" }
          : d.kind === "site"
          ? { r: 3.5, fill: C.ok, opacity: 0.85 }
          : { r: 3, fill: C.grey };
      const c = s("circle", Object.assign({ cx: px(d), cy: py(d) }, attrs));
      c.append(s("title", {}, d.label));
      svg.append(c);
      if (d.kind === "uncovered") svg.append(s("text", { x: px(d) + 8, y: py(d) + 4, "font-size": 11.5, fill: "#6d1712" }, d.label));
    }
    return svg;
  };

  LL.legend = (items) => LL.h("div.legend", items.map(([color, text]) => LL.h("span", LL.h("i", { style: null, "data-color": color, class: "sw-" + color }), text)));
})();
