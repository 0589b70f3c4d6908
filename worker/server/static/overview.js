// /ui/: what the deployment did over the last hour or day, from the rollups
// skillq keeps in Redis (/v1/stats, admin): jobs ended per minute by outcome,
// run-time percentiles, queue depth over time. Charts are drawn as SVG here,
// so the page needs no charting library and no Prometheus.
"use strict";

(() => {
  const { el, api, clear } = SKILLQ;
  // Queue names are anyone's strings ("constructor" too): they key Maps, never plain objects.
  const COLORS = new Map(Object.entries({ succeeded: "#15803d", failed: "#b91c1c", cancelled: "#9ca3af", p50: "#1d4ed8", p95: "#b45309", p99: "#7c3aed" }));
  const QUEUE_COLORS = ["#0f766e", "#1d4ed8", "#b45309", "#7c3aed", "#be185d", "#4d7c0f", "#374151"];
  const colorOf = (name, i) => COLORS.get(name) || QUEUE_COLORS[i % QUEUE_COLORS.length];
  const count = (counts, key) => (Object.hasOwn(counts || {}, key) ? Number(counts[key]) || 0 : 0);
  SKILLQ.header(document.body.dataset.here);
  const page = document.getElementById("page");
  const windowSelect = el("select", { id: "window" }, el("option", { value: "3600" }, "last hour"), el("option", { value: "86400" }, "last day"));
  windowSelect.value = new URLSearchParams(location.search).get("window") === "86400" ? "86400" : "3600";
  const totals = el("div", { class: "totals", id: "totals" });
  const charts = { ended: el("div", { id: "chart-ended" }), durations: el("div", { id: "chart-durations" }), depth: el("div", { id: "chart-depth" }) };
  page.append(el("h1", {}, "Overview ", windowSelect),
    el("section", { class: "card" }, totals),
    el("div", { class: "grid" },
      el("section", { class: "card" }, el("h2", {}, "Jobs ended"), charts.ended),
      el("section", { class: "card" }, el("h2", {}, "Run time percentiles (ms, log scale)"), charts.durations),
      el("section", { class: "card" }, el("h2", {}, "Queue depth (queued + running)"), charts.depth)));
  windowSelect.addEventListener("change", () => {
    history.replaceState(null, "", "/ui/?window=" + windowSelect.value);
    refresh();
  });

  // Bins of minutes: one per minute over an hour, one per 15 minutes over a day.
  function binned(minutes, size) {
    const bins = [];
    for (let i = 0; i < minutes.length; i += size) {
      const group = minutes.slice(i, i + size);
      const bin = { at: group[0].at, ended: { succeeded: 0, failed: 0, cancelled: 0 }, p: { p50: null, p95: null, p99: null }, depth: new Map() };
      for (const m of group) {
        for (const k of Object.keys(bin.ended)) bin.ended[k] += m.ended[k] || 0;
        for (const k of Object.keys(bin.p)) if (m.percentiles_ms[k] !== null) bin.p[k] = Math.max(bin.p[k] || 0, m.percentiles_ms[k]);
        for (const q of Object.keys(m.queued)) bin.depth.set(q, Math.max(bin.depth.get(q) || 0, count(m.queued, q) + count(m.taken, q)));
      }
      bins.push(bin);
    }
    return bins;
  }

  const W = 600, H = 200, LEFT = 40, RIGHT = 8, BOTTOM = 18;
  const svg = (...children) => el("svg:svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" }, ...children);
  const label = (x, y, text, anchor) => el("svg:text", { x, y, "text-anchor": anchor || "start" }, text);
  const b_at = (bin) => clock(bin.at);
  const clock = (at) => new Date(at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const axis = (bins, top) => [
    el("svg:line", { x1: LEFT, y1: H - BOTTOM, x2: W - RIGHT, y2: H - BOTTOM, stroke: "#d1d5db" }),
    label(LEFT - 4, 10, top, "end"), label(LEFT - 4, H - BOTTOM, "0", "end"),
    label(LEFT, H - 4, clock(bins[0].at)), label(W - RIGHT, H - 4, clock(bins[bins.length - 1].at), "end"),
  ];
  // Swatches are coloured through the CSSOM: the page's CSP refuses style attributes.
  const swatch = (color) => { const i = el("i", {}); i.style.backgroundColor = color; return i; };
  const legend = (names) => el("div", { class: "legend" }, names.map((n, i) => el("span", {}, swatch(colorOf(n, i)), n)));

  function endedChart(bins) {
    const top = Math.max(1, ...bins.map((b) => b.ended.succeeded + b.ended.failed + b.ended.cancelled));
    const step = (W - LEFT - RIGHT) / bins.length, scale = (H - BOTTOM - 12) / top;
    const bars = [];
    bins.forEach((b, i) => {
      let y = H - BOTTOM;
      for (const k of ["succeeded", "failed", "cancelled"]) {
        const h = b.ended[k] * scale;
        if (h > 0) bars.push(el("svg:rect", { x: LEFT + i * step + 0.5, y: y - h, width: Math.max(1, step - 1), height: h, fill: COLORS.get(k), "data-outcome": k },
          el("svg:title", {}, `${clock(b.at)} ${k}: ${b.ended[k]}`)));
        y -= h;
      }
    });
    return [svg(...axis(bins, String(top)), ...bars), legend(["succeeded", "failed", "cancelled"])];
  }

  function lineChart(bins, series, values, logScale) {
    const all = bins.flatMap((b) => series.map((s) => values(b, s))).filter((v) => v !== null && v !== undefined && v > 0);
    const top = Math.max(1, ...all);
    const step = (W - LEFT - RIGHT) / Math.max(1, bins.length - 1);
    const y = (v) => {
      const span = H - BOTTOM - 12;
      if (logScale) return H - BOTTOM - (Math.log10(Math.max(v, 1)) / Math.max(0.001, Math.log10(top))) * span;
      return H - BOTTOM - (v / top) * span;
    };
    const marks = series.flatMap((s, i) => {
      const points = bins.map((b, j) => [j, values(b, s)]).filter(([, v]) => v !== null && v !== undefined)
        .map(([j, v]) => [LEFT + j * step, y(v), v, b_at(bins[j])]);
      const color = colorOf(s, i);
      if (!points.length) return [];
      // A line through the points, and a dot on each (one minute alone is a dot).
      return [el("svg:polyline", { points: points.map(([x, py]) => `${x.toFixed(1)},${py.toFixed(1)}`).join(" "), fill: "none", stroke: color, "stroke-width": 1.5, "data-series": s }),
        ...points.map(([x, py, v, at]) => el("svg:circle", { cx: x.toFixed(1), cy: py.toFixed(1), r: 2.5, fill: color, "data-series": s },
          el("svg:title", {}, `${at} ${s}: ${Math.round(v * 10) / 10}`)))];
    });
    return [svg(...axis(bins, logScale ? `${Math.round(top)}` : String(top)), ...marks), legend(series)];
  }

  async function refresh() {
    try {
      const stats = await api("GET", "/v1/stats?seconds=" + windowSelect.value);
      const bins = binned(stats.minutes, windowSelect.value === "86400" ? 15 : 1);
      const t = stats.ended, p = stats.percentiles_ms;
      const ms = (v) => (v === null ? "-" : v < 1000 ? `${v.toFixed(1)} ms` : `${(v / 1000).toFixed(2)} s`);
      clear(totals).append(
        ...["succeeded", "failed", "cancelled"].map((k) => el("div", { "data-total": k }, el("strong", {}, String(t[k])), k)),
        ...["p50", "p95", "p99"].map((k) => el("div", {}, el("strong", {}, ms(p[k])), `${k} run time`)));
      clear(charts.ended).append(...endedChart(bins));
      clear(charts.durations).append(...lineChart(bins, ["p50", "p95", "p99"], (b, s) => b.p[s], true));
      const queues = [...new Set(bins.flatMap((b) => [...b.depth.keys()]))].sort();
      clear(charts.depth).append(...(queues.length ? lineChart(bins, queues, (b, q) => (b.depth.has(q) ? b.depth.get(q) : null), false) : [el("p", { class: "muted" }, "No samples yet (workers add one a minute).")]));
      SKILLQ.say("");
    } catch (error) {
      SKILLQ.say(SKILLQ.explain(error));
    }
  }
  SKILLQ.every(10, refresh);
})();
