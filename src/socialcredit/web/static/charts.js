/* socialcredit lab: shared helpers and the charts of a run, a citizen and a sweep.
 *
 * Charts are drawn with Plotly.js (served by the app itself); a chart's element gets
 * data-ready="1" once drawn. Everything shown is built with textContent, never from
 * HTML strings. app.js (loaded after this file) starts the right page.
 */
"use strict";

const CAUSES = { record: "own records", error: "false records alone", association: "friends' scores only" };
const CAUSE_COLOURS = { record: "#7f6a55", error: "#e08214", association: "#8073ac" };
const PALETTE = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"];
const CONFIG = { responsive: true, displaylogo: false };

function pageData() {
  const node = document.getElementById("page-data");
  return node ? JSON.parse(node.textContent) : {};
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  let body = null;
  try { body = await response.json(); } catch (e) { body = null; }
  if (!response.ok) {
    const detail = body && (body.detail || body.errors) ? body.detail || body.errors : response.statusText;
    const error = new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
    error.status = response.status;
    error.body = body;
    throw error;
  }
  return body;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  if (typeof value !== "number") return String(value);
  const d = digits === undefined ? (Number.isInteger(value) ? 0 : 2) : digits;
  return value.toLocaleString("en-GB", { minimumFractionDigits: d, maximumFractionDigits: d });
}

function signed(value, digits) {
  if (value === null || value === undefined) return "–";
  return (value > 0 ? "+" : "") + fmt(value, digits);
}

function plot(id, traces, layout) {
  const node = document.getElementById(id);
  if (!node) return null;
  const base = {
    margin: { l: 60, r: 20, t: 36, b: 48 }, height: 340, font: { size: 12 },
    legend: { font: { size: 11 } }, hovermode: "x unified",
  };
  const merged = Object.assign({}, base, layout || {});
  return Plotly.newPlot(node, traces, merged, CONFIG).then(() => { node.dataset.ready = "1"; return node; });
}

function showError(id, error) {
  const node = document.getElementById(id);
  if (!node) return;
  node.replaceChildren(el("p", { class: "error-box", role: "alert" }, "Could not load: " + error.message));
  node.dataset.ready = "error";
}

/* Grade colours: black-list grades in reds (worst darkest), the others in blues (best darkest). */
function gradeColours(meta) {
  const names = meta.grades.map((g) => g.name);
  const black = names.filter((g) => meta.black_grades.includes(g)).reverse();
  const other = names.filter((g) => !meta.black_grades.includes(g)).reverse();
  const colours = {};
  black.forEach((g, i) => { colours[g] = `hsl(0, 70%, ${30 + 40 * i / Math.max(black.length - 1, 1)}%)`; });
  other.forEach((g, i) => { colours[g] = `hsl(212, 60%, ${75 - 40 * i / Math.max(other.length - 1, 1)}%)`; });
  return colours;
}

function days(columns) { return columns.day.map((d) => d + 1); }

/* ---- the charts of one run ------------------------------------------------------------------------------ */

function gradeTraces(m, options) {
  const c = m.columns, meta = m.meta, x = days(c), colours = gradeColours(meta);
  const worst = meta.grades.map((g) => g.name).filter((g) => ("grade_" + g) in c).reverse();
  return worst.map((g) => ({
    x, y: c["grade_" + g].map((v) => 100 * v / meta.citizens), type: "scatter", mode: "lines",
    name: meta.black_grades.includes(g) ? `${g} (black list)` : g, stackgroup: options.stack ? "grades" : undefined,
    line: { width: options.stack ? 0.5 : 2, color: colours[g], dash: options.dash || "solid" },
    fillcolor: colours[g], hovertemplate: "%{y:.1f} %",
  }));
}

function drawRun(m) {
  const c = m.columns, meta = m.meta, x = days(c), n = meta.citizens;
  const grades = gradeTraces(m, { stack: true });
  grades.push({ x, y: c.blacklisted.map((v) => 100 * v / n), name: "on the black list (all causes)", type: "scatter",
    mode: "lines", line: { color: "black", dash: "dash", width: 1.5 }, hovertemplate: "%{y:.1f} %" });
  plot("chart-grades", grades, { title: { text: "Grades over time" }, xaxis: { title: { text: "day" } },
    yaxis: { title: { text: "share of citizens (%)" }, range: [0, 100] } });

  const causes = Object.keys(CAUSES).filter((k) => ("black_by_" + k) in c).map((k) => ({
    x, y: c["black_by_" + k], name: "by " + CAUSES[k], type: "scatter", mode: "lines", stackgroup: "causes",
    line: { width: 0.5, color: CAUSE_COLOURS[k] }, fillcolor: CAUSE_COLOURS[k] }));
  plot("chart-causes", causes, { title: { text: "The black list by cause" }, xaxis: { title: { text: "day" } },
    yaxis: { title: { text: "citizens on the black list" } } });

  const groups = meta.groups.filter((g) => ("blacklist_rate_" + g) in c);
  const last = (col) => c[col][c[col].length - 1];
  const city = 100 * last("blacklisted") / n;
  plot("chart-groups", [{ type: "bar", orientation: "h", y: groups, x: groups.map((g) => 100 * last("blacklist_rate_" + g)),
    marker: { color: groups.map(() => "#8c8c8c") }, text: groups.map((g) => fmt(100 * last("blacklist_rate_" + g), 1) + " %"),
    textposition: "outside", name: "blacklisted", hovertemplate: "%{y}: %{x:.1f} %<extra></extra>" }],
  { title: { text: "Blacklist rate by group at the last step" }, hovermode: "closest", showlegend: false,
    xaxis: { title: { text: "blacklisted (%)" }, range: [0, 1.2 * Math.max(1, ...groups.map((g) => 100 * last("blacklist_rate_" + g)))] },
    yaxis: { autorange: "reversed" },
    shapes: [{ type: "line", x0: city, x1: city, yref: "paper", y0: 0, y1: 1, line: { dash: "dash", color: "black" } }],
    height: 120 + 40 * groups.length });

  plot("chart-ties", [
    { x, y: c.ties_cut_cum, name: "ties cut (cumulative)", type: "scatter", mode: "lines", line: { color: "#542788", width: 2 } },
    { x, y: c.ties_active, name: "ties active", type: "scatter", mode: "lines", yaxis: "y2", line: { color: "#1b7837", width: 2, dash: "dot" } },
  ], { title: { text: `Ties cut, of ${fmt(meta.ties)}` }, xaxis: { title: { text: "day" } },
    yaxis: { title: { text: "ties cut" }, rangemode: "tozero" },
    yaxis2: { title: { text: "ties active" }, overlaying: "y", side: "right", rangemode: "tozero" },
    legend: { x: 0.02, y: 0.75, bgcolor: "rgba(255,255,255,0.8)" }, margin: { l: 60, r: 70, t: 36, b: 48 } });

  const critical = meta.criticism.length ? meta.criticism : meta.types.map((t) => t.name).slice(0, 3);
  plot("chart-criticism", critical.filter((t) => ("acts_" + t) in c).map((t, i) => ({
    x, y: c["acts_" + t], name: t.replaceAll("_", " "), type: "scatter", mode: "lines",
    line: { color: PALETTE[i % PALETTE.length], width: 2 } })),
  { title: { text: "Criticism acts per scoring step" }, xaxis: { title: { text: "day" } },
    yaxis: { title: { text: "acts" }, rangemode: "tozero" } });
}

function drawAudit(a, groupsMeta) {
  const box = document.getElementById("audit");
  const rec = a.records, fr = a.false_records, c = a.causes, iso = a.isolation;
  const di = a.disparate_impact;
  const facts = el("dl", { class: "facts" },
    el("dt", {}, "records held"), el("dd", {}, `${fmt(rec.total)} (${fmt(rec.per_citizen_mean, 2)} per citizen, at most ${fmt(rec.per_citizen_max)})`),
    el("dt", {}, "false records"), el("dd", {}, `${fmt(fr.count)} (${fmt(100 * fr.share, 1)} %), ${fmt(fr.appealed)} appealed, ${fmt(fr.overturned)} overturned; in effect ${fmt(fr.mean_days_in_effect, 0)} days on average`),
    el("dt", {}, "black list"), el("dd", {}, `${fmt(c.blacklisted)} = ${fmt(c.record)} by record + ${fmt(c.error)} by error + ${fmt(c.association)} by association`),
    el("dt", {}, "isolation"), el("dd", {}, `the blacklisted lost ${fmt(iso.mean_degree_loss_blacklisted, 2)} ties on average, the others ${fmt(iso.mean_degree_loss_others, 2)}; ${fmt(iso.isolated)} citizens left without any tie`));
  const rows = di.groups.map((g) => el("tr", { class: g.flagged ? "flagged" : "" },
    el("td", {}, g.group), el("td", { class: "num" }, fmt(g.citizens)), el("td", { class: "num" }, fmt(g.blacklisted)),
    el("td", { class: "num" }, fmt(100 * g.blacklist_rate, 1) + " %"), el("td", { class: "num" }, fmt(g.impact_ratio, 2)),
    el("td", {}, g.flagged ? "FLAGGED" : "")));
  const table = el("table", { class: "compact", id: "disparate-impact" },
    el("caption", {}, `Disparate impact (four-fifths rule, reference group ${di.reference_group})`),
    el("thead", {}, el("tr", {}, ["group", "citizens", "blacklisted", "rate", "impact ratio", "flag"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
  box.replaceChildren(facts, el("div", { class: "table-wrap" }, table),
    el("figure", {}, el("div", { class: "chart", id: "chart-component" }),
      el("figcaption", {}, "Share of citizens in the largest group still connected by ties; day 0 is before any cut.")));
  box.dataset.ready = "1";
  const comp = iso.largest_component || [];
  plot("chart-component", [{ x: comp.map((p) => (p.step < 0 ? 0 : p.day + 1)), y: comp.map((p) => 100 * p.share),
    type: "scatter", mode: "lines", line: { color: "#1b7837", width: 2 }, name: "largest component" }],
  { title: { text: "Largest connected component" }, xaxis: { title: { text: "day" } },
    yaxis: { title: { text: "share of citizens (%)" } }, height: 280, showlegend: false });
  const flagged = Object.fromEntries(di.groups.map((g) => [g.group, g.flagged]));
  const chart = document.getElementById("chart-groups");
  if (chart && chart.data) Plotly.restyle(chart, { "marker.color": [groupsMeta.map((g) => (flagged[g] ? "#b2182b" : "#8c8c8c"))] });
}

async function runPage(d) {
  try {
    const m = await getJSON(d.metrics);
    drawRun(m);
    getJSON(d.audit).then((a) => drawAudit(a, m.meta.groups.filter((g) => ("blacklist_rate_" + g) in m.columns)))
      .catch((e) => showError("audit", e));
  } catch (e) {
    ["chart-grades", "chart-causes", "chart-groups", "chart-ties", "chart-criticism"].forEach((id) => showError(id, e));
  }
}

/* ---- one citizen ------------------------------------------------------------------------------------------ */

function drawTimeline(story, meta) {
  const steps = story.steps, x = steps.map((s) => s.day + 1);
  const values = steps.flatMap((s) => [s.points, s.score]);
  const lo = Math.min(...values, story.final.points) - 40, hi = Math.max(...values, story.final.points) + 40;
  const shapes = [], annotations = [];
  for (const g of meta.grades) {
    if (g.min < lo || g.min > hi) continue;
    const black = meta.black_grades.includes(g.name);
    shapes.push({ type: "line", xref: "paper", x0: 0, x1: 1, y0: g.min, y1: g.min,
      line: { dash: "dot", width: 1, color: black ? "#b2182b" : "#2166ac" } });
    annotations.push({ xref: "paper", x: 1, y: g.min, text: g.name, showarrow: false, xanchor: "left",
      font: { size: 10, color: black ? "#b2182b" : "#2166ac" } });
  }
  for (const ep of story.blacklistings) {
    shapes.push({ type: "rect", x0: ep.start_day + 1, x1: ep.end_day === null ? meta.days : ep.end_day + 1, yref: "paper",
      y0: 0, y1: 1, fillcolor: "rgba(178,24,43,0.08)", line: { width: 0 }, layer: "below" });
  }
  const recs = story.records;
  const traces = [
    { x, y: steps.map((s) => s.points), name: "own points P", type: "scatter", mode: "lines", line: { shape: "hv", color: "#7f6a55", width: 2 } },
    { x, y: steps.map((s) => s.score), name: "score S", type: "scatter", mode: "lines", line: { color: "#2166ac", width: 2 } },
    { x: recs.map((r) => r.effective_day + 1), y: recs.map(() => lo + 8), name: "records (day they take effect)",
      type: "scatter", mode: "markers", marker: { symbol: "triangle-up", size: 10, color: recs.map((r) => (r.true ? (r.points < 0 ? "#b2182b" : "#1b7837") : "#e08214")) },
      text: recs.map((r) => `${r.true ? "" : "FALSE "}${r.type} by ${r.agency}: ${r.points > 0 ? "+" : ""}${r.points} points`),
      hovertemplate: "%{text}<extra></extra>" },
  ];
  return plot("chart-timeline", traces, { title: { text: "Own points P and score S", y: 0.97 }, shapes, annotations,
    legend: { orientation: "h", x: 0, y: 1.0, yanchor: "bottom" }, height: 380,
    xaxis: { title: { text: "day" }, range: [0, meta.days + 1] }, yaxis: { title: { text: "points" }, range: [lo, hi] },
    margin: { l: 60, r: 40, t: 70, b: 48 }, hovermode: "closest" });
}

function drawEgo(story, ego, meta, base) {
  const colours = gradeColours(meta), nbs = ego.neighbours, k = nbs.length;
  const pos = nbs.map((_, i) => [Math.cos(2 * Math.PI * i / Math.max(k, 1)), Math.sin(2 * Math.PI * i / Math.max(k, 1))]);
  const edges = (cut) => {
    const xs = [], ys = [];
    nbs.forEach((nb, i) => { if ((nb.cut_day !== null) === cut) { xs.push(0, pos[i][0], null); ys.push(0, pos[i][1], null); } });
    return { x: xs, y: ys };
  };
  const active = edges(false), cut = edges(true);
  const traces = [
    { ...active, type: "scatter", mode: "lines", name: "active tie", line: { color: "#555", width: 1.5 }, hoverinfo: "skip" },
    { ...cut, type: "scatter", mode: "lines", name: "cut tie", line: { color: "#bbb", width: 1.5, dash: "dash" }, hoverinfo: "skip" },
  ];
  const byGrade = {};
  nbs.forEach((nb, i) => { (byGrade[nb.grade] = byGrade[nb.grade] || []).push(i); });
  for (const g of meta.grades.map((x) => x.name).filter((g) => g in byGrade)) {
    const idx = byGrade[g];
    traces.push({ x: idx.map((i) => pos[i][0]), y: idx.map((i) => pos[i][1]), type: "scatter", mode: "markers",
      name: `grade ${g}`, customdata: idx.map((i) => nbs[i].citizen),
      marker: { size: 16, color: colours[g], line: { width: idx.map((i) => (nbs[i].blacklisted ? 3 : 1)), color: "#111" } },
      text: idx.map((i) => { const nb = nbs[i]; return `citizen ${nb.citizen} (${nb.kind}, ${nb.group}): grade ${nb.grade}, score ${fmt(nb.score, 1)}` +
        (nb.blacklisted ? ", on the black list" : "") + (nb.cut_day !== null ? `; tie cut on day ${nb.cut_day}` : ""); }),
      hovertemplate: "%{text}<extra></extra>" });
  }
  const f = story.final;
  traces.push({ x: [0], y: [0], type: "scatter", mode: "markers+text", name: `citizen ${story.citizen}`,
    text: [String(story.citizen)], textposition: "bottom center",
    marker: { size: 26, color: colours[f.grade], symbol: "star", line: { width: f.blacklisted ? 3 : 1, color: "#111" } },
    hovertemplate: `citizen ${story.citizen}: grade ${f.grade}, score ${fmt(f.score, 1)}<extra></extra>` });
  const title = k < ego.degree ? `Her ties (${k} of ${ego.degree} shown)` : `Her ${ego.degree} ties`;
  return plot("chart-ego", traces, { title: { text: title }, hovermode: "closest",
    xaxis: { visible: false, range: [-1.3, 1.3] }, yaxis: { visible: false, range: [-1.3, 1.3], scaleanchor: "x" },
    height: 420 }).then((node) => {
    if (node) node.on("plotly_click", (ev) => {
      const id = ev.points && ev.points[0] && ev.points[0].customdata;
      if (id !== undefined && id !== null) window.location.href = base + id;
    });
  });
}

async function citizenPage(d) {
  try {
    const data = await getJSON(d.api);
    drawTimeline(data.story, data.meta);
    drawEgo(data.story, data.ego, data.meta, d.citizen_base);
  } catch (e) { ["chart-timeline", "chart-ego"].forEach((id) => showError(id, e)); }
}

/* ---- a sweep ---------------------------------------------------------------------------------------------- */

async function sweepPage(d) {
  let summary;
  try { summary = await getJSON(d.summary); } catch (e) { showError("chart-cells", e); return; }
  if (!summary.rows.length) return;
  const label = (row) => summary.params.map((p) => `${p}=${row[p]}`).join(", ") || `cell ${row.cell}`;
  const select = document.getElementById("measure");
  const numeric = summary.params.length === 1 && summary.rows.every((r) => typeof r[summary.params[0]] === "number");
  async function draw() {
    const m = select.value, rows = summary.rows;
    const mean = rows.map((r) => r[m + "_mean"]);
    const trace = { y: mean, name: m, error_y: { type: "data", symmetric: false, array: rows.map((r, i) => r[m + "_ci_high"] - mean[i]),
      arrayminus: rows.map((r, i) => mean[i] - r[m + "_ci_low"]) }, hovertemplate: "%{y:.2f}" };
    if (numeric) Object.assign(trace, { x: rows.map((r) => r[summary.params[0]]), type: "scatter", mode: "lines+markers" });
    else Object.assign(trace, { x: rows.map(label), type: "bar", marker: { color: "#2166ac" } });
    plot("chart-cells", [trace], { title: { text: `${m}: mean and 95 % CI per cell` }, hovermode: "closest", showlegend: false,
      xaxis: { title: { text: numeric ? summary.params[0] : "cell" } }, yaxis: { title: { text: m } } });
    try {
      const series = await getJSON(`${d.series}?measure=${encodeURIComponent(m)}`);
      const byCell = Object.fromEntries(rows.map((r) => [r.cell, r]));
      plot("chart-series", series.cells.map((s, i) => ({ x: s.day.map((v) => v + 1), y: s.mean, type: "scatter", mode: "lines",
        name: byCell[s.cell] ? label(byCell[s.cell]) : `cell ${s.cell}`, line: { color: PALETTE[i % PALETTE.length] } })),
      { title: { text: `${m} over time (mean over replicates)` }, xaxis: { title: { text: "day" } }, yaxis: { title: { text: m } } });
    } catch (e) { showError("chart-series", e); }
  }
  select.addEventListener("change", draw);
  draw();
}

