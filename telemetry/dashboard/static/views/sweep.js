// A sweep: its trials (stopped ones marked), parallel coordinates, importance, best so far.
import { getJSON, runPath } from "../api.js";
import { lineChart } from "../charts.js";
import { el, fmt, duration } from "../format.js";

const SVG = "http://www.w3.org/2000/svg";
const GOOD = [26, 152, 80];
const BAD = [215, 48, 39];

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  node.append(...children);
  return node;
}

// The stopped badge says what W&B's table says: hyperband ended the trial early.
function stateCell(trial) {
  if (!trial.stopped) return el("td", { class: `status-${trial.state}`, testid: "trial-state" }, trial.state);
  return el("td", { class: "status-stopped", testid: "trial-state" },
    el("span", { class: "tag", testid: "stopped-mark", title: "stopped early by the sweep's early_terminate" }, "stopped early"));
}

// Hovering a trial's row brings its line forward in the parallel coordinates.
function highlight(root, number) {
  root.querySelectorAll('[data-testid="parallel-line"]').forEach((line) => {
    const mine = line.dataset.trial === String(number);
    line.setAttribute("opacity", number === null || mine ? 0.85 : 0.15);
    line.setAttribute("stroke-width", mine ? 4 : 2);
  });
}

const SORT_KEYS = { trial: (t) => t.number, state: (t) => t.state, values: (t) => t.values, duration: (t) => t.duration, last: (t) => t.last };

function trialsTable(root, data, names) {
  const keyOf = (h) => SORT_KEYS[h] || (h.startsWith("best") ? (t) => t.best : (t) => t.params[h]);
  const head = ["trial", "state", ...names, `best ${data.metric || ""}`, "last", "values", "duration"];
  const row = (t) => el("tr", {
    testid: "trial", "data-number": String(t.number), "data-state": t.state,
    style: t.stopped ? "background:#fff6ec" : t.number === data.best?.number ? "background:#eefaf0" : null,
    onmouseenter: () => highlight(root, t.number), onmouseleave: () => highlight(root, null),
  },
  el("td", { class: "num" }, t.number), stateCell(t),
  names.map((n) => el("td", { class: typeof t.params[n] === "number" ? "num" : null }, fmt(t.params[n]))),
  el("td", { class: "num", testid: "trial-best" }, fmt(t.best)), el("td", { class: "num" }, fmt(t.last)),
  el("td", { class: "num" }, fmt(t.values)), el("td", { class: "num" }, duration(t.duration)),
  el("td", {}, t.run_id ? el("a", { href: `#/run/${encodeURIComponent(t.run_id)}` }, "run") : ""));
  const body = el("tbody", {}, data.trials.map(row));
  let sorted = { by: "trial", up: true };
  // Click a heading to sort by it (again: the other way); empty values go last.
  const sortBy = (h) => {
    sorted = { by: h, up: sorted.by === h ? !sorted.up : true };
    const key = keyOf(h);
    const trials = [...data.trials].sort((a, b) => {
      const [x, y] = [key(a), key(b)];
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : x > y ? 1 : 0) * (sorted.up ? 1 : -1);
    });
    body.replaceChildren(...trials.map(row));
  };
  const heads = head.map((h) => el("th", { class: "sortable", onclick: () => sortBy(h) }, h));
  return el("table", { testid: "trials" }, el("thead", {}, el("tr", {}, heads, el("th", {}, "run"))), body);
}

// Where a value sits on its axis, 0 (bottom) to 1 (top).
function position(axis, value) {
  if (axis.kind === "categorical") {
    const at = axis.values.findIndex((v) => JSON.stringify(v) === JSON.stringify(value));
    return axis.values.length < 2 ? 0.5 : at / (axis.values.length - 1);
  }
  if (value === null || value === undefined || axis.min === null) return null;
  if (axis.max === axis.min) return 0.5;
  const f = axis.log ? (v) => Math.log(v) : (v) => v;
  return (f(value) - f(axis.min)) / (f(axis.max) - f(axis.min));
}

function shade(goodness) {
  const c = GOOD.map((g, i) => Math.round(BAD[i] + (g - BAD[i]) * goodness));
  return `rgb(${c.join(",")})`;
}

function ticks(axis) {
  if (axis.kind === "categorical") return axis.values.map((v) => [v, fmt(v)]);
  if (axis.min === null) return [];
  return axis.min === axis.max ? [[axis.min, fmt(axis.min)]] : [[axis.min, fmt(axis.min)], [axis.max, fmt(axis.max)]];
}

// Parameters against the metric: one vertical axis each, one polyline per trial with a
// value, coloured from worst (red) to best (green); stopped trials dashed.
function parallelPlot(parallel, goal, width) {
  const axes = [...parallel.axes, parallel.metric];
  const height = 320;
  const top = 36;
  const bottom = 30;
  const left = 70;
  const gap = axes.length > 1 ? (width - 2 * left) / (axes.length - 1) : 0;
  const xOf = (i) => left + i * gap;
  const yOf = (p) => top + (1 - (0.04 + 0.92 * p)) * (height - top - bottom);
  const plot = svg("svg", { width, height, "data-testid": "parallel", "data-lines": parallel.lines.length, "data-axes": axes.length });
  const { min, max } = parallel.metric;
  parallel.lines.forEach((line) => {
    const spread = max === min ? 1 : (line.value - min) / (max - min);
    const goodness = goal === "maximize" ? spread : 1 - spread;
    const points = axes.map((axis, i) => {
      const p = position(axis, i === axes.length - 1 ? line.value : line.params[axis.name]);
      return p === null ? null : `${xOf(i).toFixed(1)},${yOf(p).toFixed(1)}`;
    }).filter((p) => p !== null);
    const path = svg("polyline", {
      points: points.join(" "), fill: "none", stroke: shade(goodness), "stroke-width": 2, opacity: 0.85,
      "stroke-dasharray": line.state === "stopped" ? "6,4" : "none",
      "data-testid": "parallel-line", "data-trial": line.trial, "data-state": line.state, "data-value": line.value,
    }, svg("title", {}, `trial ${line.trial} (${line.state}): ${fmt(line.value)}`));
    path.addEventListener("mouseenter", () => path.setAttribute("stroke-width", 4));
    path.addEventListener("mouseleave", () => path.setAttribute("stroke-width", 2));
    plot.append(path);
  });
  axes.forEach((axis, i) => {
    const x = xOf(i);
    plot.append(svg("line", { x1: x, x2: x, y1: top, y2: height - bottom, stroke: "#556", "stroke-width": 1 }),
      svg("text", { x, y: top - 14, "text-anchor": "middle", "font-size": 12, "font-weight": 600, "data-testid": "parallel-axis" }, axis.name));
    for (const [value, label] of ticks(axis)) {
      const y = yOf(position(axis, value));
      plot.append(svg("line", { x1: x - 4, x2: x, y1: y, y2: y, stroke: "#556" }),
        svg("text", { x: x - 7, y: y + 4, "text-anchor": "end", "font-size": 11, fill: "#334", stroke: "#fff", "stroke-width": 3, "paint-order": "stroke" }, label));
    }
  });
  return plot;
}

function importanceBars(importance) {
  const entries = Object.entries(importance.values || {});
  if (!entries.length) return el("p", { class: "muted", testid: "importance-note" }, importance.note || "no importance yet");
  const biggest = Math.max(...entries.map(([, v]) => v), 1e-12);
  return el("div", { testid: "importance" }, entries.map(([name, value]) => el("div", {
    testid: "importance-bar", "data-param": name, "data-value": String(value),
    style: "display:flex;align-items:center;gap:8px;margin:3px 0;font-size:13px",
  },
  el("span", { style: "width:160px;text-align:right" }, name),
  el("span", { style: `display:inline-block;height:14px;background:#1f77b4;width:${Math.round(300 * value / biggest)}px` }),
  el("span", { class: "num" }, value.toFixed(3)))));
}

function bestBox(data) {
  if (!data.best) return el("p", { class: "muted", testid: "best" }, "no trial has finished yet");
  const b = data.best;
  return el("div", { testid: "best", "data-number": String(b.number) },
    el("p", {}, `trial ${b.number}: ${data.metric} = ${fmt(b.best)} `, b.run_id ? el("a", { href: `#/run/${encodeURIComponent(b.run_id)}` }, "run") : ""),
    el("code", { testid: "best-config" }, Object.entries(b.params).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(" ")));
}

const LIVE_MS = 3000;

export async function render(root, id) {
  let timer = null;
  let chart = null;
  let gone = false;
  let shown = "";
  async function draw() {
    const data = await getJSON(`/api/sweep/${runPath(id)}`);
    if (gone) return;
    const text = JSON.stringify(data);
    if (text !== shown) { // redrawn only when something changed: the page keeps its scroll
      shown = text;
      if (chart) chart.destroy();
      root.replaceChildren();
      chart = build(root, data);
    }
    // While trials run or wait, look again: a sweep is read from its files, not pushed.
    const live = (data.counts.running || 0) + (data.counts.waiting || 0) > 0;
    root.dataset.live = String(live);
    if (live) timer = setTimeout(() => draw().catch(() => {}), LIVE_MS);
  }
  root.append(el("p", { class: "muted", testid: "loading" }, "reading the sweep…"));
  await draw();
  return () => { gone = true; clearTimeout(timer); if (chart) chart.destroy(); };
}

function build(root, data) {
  const names = [...new Set(data.trials.flatMap((t) => Object.keys(t.params)))].sort();
  const counts = Object.entries(data.counts).map(([state, n]) => `${n} ${state}`).join(", ");
  const curve = el("div", { class: "chart", testid: "best-so-far" });
  const parallelBox = el("div", { class: "chart", style: "overflow-x:auto" });
  root.append(
    el("h2", { testid: "sweep-id" }, `sweep ${data.id}`),
    el("p", { class: "muted", testid: "sweep-summary" }, `${data.method || "?"} · ${data.goal} ${data.metric || "(no metric)"} · ${counts || "no trials yet"}`),
    el("div", {}, data.problems.length ? el("div", { class: "problems", testid: "problems", "data-count": String(data.problems.length) },
      el("ul", {}, data.problems.map((p) => el("li", {}, `${p.file}${p.line ? ` line ${p.line}` : ""}: ${p.reason}`)))) : null),
    el("h3", {}, "Trials"), trialsTable(root, data, names),
    el("h3", {}, "Best configuration"), bestBox(data),
    el("h3", {}, "Parameters against the metric"),
    el("p", { class: "muted" }, "one line per trial with a value, green the best to red the worst; dashed: stopped early"), parallelBox,
    el("h3", {}, "Parameter importance (fANOVA)"), importanceBars(data.importance),
    el("h3", {}, "Best so far"), curve);
  parallelBox.append(parallelPlot(data.parallel, data.goal, Math.max(480, parallelBox.clientWidth - 12)));
  const b = data.best_so_far;
  const chart = lineChart(curve, {
    title: `best ${data.metric || "objective"} so far, by trials ended`, xLabel: "trials ended",
    series: [{ label: "best so far", x: b.order, y: b.best, color: "#2ca02c" },
      { label: "trial", kind: "points", x: b.order, y: b.value, color: "#1f77b4" }],
  });
  return chart;
}
