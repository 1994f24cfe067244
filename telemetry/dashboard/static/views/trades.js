// A run's trades: cumulative P&L, drawdown, win/loss distribution, duration against return,
// win rate and P&L by hour of day, long against short, and the trade statistics.
import { getJSON, runPath } from "../api.js";
import { lineChart } from "../charts.js";
import { el, fmt } from "../format.js";

const SVG = "http://www.w3.org/2000/svg";
const WIN = "#2ca02c";
const LOSS = "#d62728";
const STATISTICS = [["trades", "trades"], ["total_pnl", "total P&L"], ["sharpe", "Sharpe (per trade)"],
  ["sortino", "Sortino (per trade)"], ["max_drawdown", "max drawdown"], ["max_drawdown_duration", "drawdown duration (trades)"],
  ["win_rate", "win rate"], ["profit_factor", "profit factor"], ["average_win", "average win"],
  ["average_loss", "average loss"], ["expectancy", "expectancy"], ["largest_win", "largest win"],
  ["largest_loss", "largest loss"], ["mean_return", "mean return"]];

function node(tag, attrs = {}, ...children) {
  const n = document.createElementNS(SVG, tag);
  Object.entries(attrs).forEach(([k, v]) => n.setAttribute(k, String(v)));
  n.append(...children);
  return n;
}

// About five round tick values covering [lo, hi].
function ticks(lo, hi) {
  if (lo === hi) return [lo];
  const raw = (hi - lo) / 5;
  const step = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 5, 10].map((m) => m * step).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / nice) * nice; v <= hi + nice * 1e-9; v += nice) out.push(Math.abs(v) < nice * 1e-9 ? 0 : v);
  return out;
}

// An SVG frame with a y axis over [lo, hi]; returns the plot and its scales.
function frame(width, height, lo, hi, title) {
  const m = { left: 64, right: 12, top: 26, bottom: 36 };
  const plot = node("svg", { width, height });
  const span = hi - lo || 1;
  const y = (v) => m.top + (1 - (v - lo) / span) * (height - m.top - m.bottom);
  plot.append(node("text", { x: width / 2, y: 16, "text-anchor": "middle", "font-size": 13, "font-weight": 600 }, title));
  for (const t of ticks(lo, hi)) {
    plot.append(node("line", { x1: m.left, x2: width - m.right, y1: y(t), y2: y(t), stroke: t === 0 ? "#889" : "#eee" }),
      node("text", { x: m.left - 6, y: y(t) + 4, "text-anchor": "end", "font-size": 11, fill: "#445" }, fmt(t)));
  }
  return { plot, m, y, inner: width - m.left - m.right };
}

// Grouped bars, one group per label; each rect carries its value for tests and hover.
function barChart(box, { title, labels, series, width = 560, height = 240 }) {
  const values = series.flatMap((s) => s.values).filter((v) => v !== null);
  const lo = Math.min(0, ...values);
  const hi = Math.max(0, ...values, lo === 0 ? 1e-9 : 0);
  const { plot, m, y, inner } = frame(width, height, lo, hi, title);
  const slot = inner / Math.max(1, labels.length);
  const bar = (slot * 0.8) / series.length;
  labels.forEach((label, i) => {
    const x0 = m.left + i * slot + slot * 0.1;
    series.forEach((s, j) => {
      const v = s.values[i];
      if (v === null) return;
      plot.append(node("rect", { x: x0 + j * bar, y: Math.min(y(v), y(0)), width: Math.max(1, bar - 1),
        height: Math.abs(y(v) - y(0)), fill: s.color, "data-testid": "bar", "data-series": s.label, "data-label": label, "data-value": v },
      node("title", {}, `${s.label} ${label}: ${fmt(v)}`)));
    });
    if (labels.length <= 12 || i % Math.ceil(labels.length / 12) === 0) {
      plot.append(node("text", { x: x0 + slot * 0.4, y: height - m.bottom + 14, "text-anchor": "middle", "font-size": 10, fill: "#445" }, label));
    }
  });
  series.forEach((s, j) => plot.append(node("text", { x: m.left + 8 + j * 90, y: height - 6, "font-size": 11, fill: s.color }, `■ ${s.label}`)));
  box.append(plot);
  box.__chartData = series.map((s) => ({ label: s.label, kind: "bars", x: labels, y: s.values }));
  box.dataset.drawn = "true";
}

// Each trade as a point: how long it was held against its return, winners green.
function scatter(box, { durations, returns, wins, width = 560, height = 260 }) {
  const pairs = durations.map((d, i) => [d, returns[i], wins[i]]).filter(([, r]) => r !== null);
  const ys = pairs.map(([, r]) => r);
  const xs = pairs.map(([d]) => d);
  const { plot, m, y, inner } = frame(width, height, Math.min(0, ...ys), Math.max(0, ...ys, 1e-9), "holding duration against return");
  const x0 = Math.min(0, ...xs);
  const x1 = Math.max(1, ...xs);
  const x = (v) => m.left + ((v - x0) / (x1 - x0)) * inner;
  for (const t of ticks(x0, x1)) plot.append(node("text", { x: x(t), y: height - m.bottom + 14, "text-anchor": "middle", "font-size": 10, fill: "#445" }, fmt(t)));
  plot.append(node("text", { x: m.left + inner / 2, y: height - 4, "text-anchor": "middle", "font-size": 11 }, "holding duration (steps)"));
  pairs.forEach(([d, r, w]) => plot.append(node("circle", { cx: x(d), cy: y(r), r: 3, fill: w ? WIN : LOSS, opacity: 0.7,
    "data-testid": "point", "data-x": d, "data-y": r }, node("title", {}, `${d} steps: ${fmt(r)}`))));
  box.append(plot);
  box.__chartData = [{ label: "return", kind: "points", x: pairs.map(([d]) => d), y: ys }];
  box.dataset.drawn = "true";
}

function statisticsTable(statistics) {
  const labels = Object.fromEntries(STATISTICS);
  const keys = [...STATISTICS.map(([key]) => key).filter((key) => key in statistics),
    ...Object.keys(statistics).filter((key) => !(key in labels))];
  return el("table", { testid: "trade-statistics" }, el("tbody", {}, keys.map((key) =>
    el("tr", { testid: "statistic", "data-key": key, "data-value": String(statistics[key]) },
      el("td", {}, labels[key] || key.replaceAll("_", " ")), el("td", { class: "num" }, statistics[key] === null ? "n/a" : fmt(statistics[key]))))));
}

function longShortTable(sides) {
  return el("table", { testid: "long-short" },
    el("thead", {}, el("tr", {}, ["side", "trades", "win rate", "P&L"].map((h) => el("th", {}, h)))),
    el("tbody", {}, Object.entries(sides).map(([side, s]) => el("tr", { testid: "side", "data-side": side },
      el("td", {}, side), el("td", { class: "num" }, s.trades), el("td", { class: "num" }, fmt(s.win_rate)), el("td", { class: "num" }, fmt(s.pnl))))));
}

export async function render(root, id) {
  root.append(el("p", { class: "muted", testid: "loading" }, "reading the log…"));
  const data = await getJSON(`/api/run/${runPath(id)}/trades`);
  root.replaceChildren();
  const v = data.views;
  root.append(el("h2", {}, "trades ", el("a", { href: `#/run/${encodeURIComponent(id)}`, style: "font-size:14px" }, id)),
    el("p", { class: "muted", testid: "trade-count" }, `${v.count} trades`));
  if (data.problems.length) {
    root.append(el("div", { class: "problems", testid: "problems", "data-count": String(data.problems.length) },
      el("ul", {}, data.problems.slice(0, 50).map((p) => el("li", {}, `line ${p.line}: ${p.reason}`)))));
  }
  if (!v.count) {
    root.append(el("p", { class: "muted", testid: "no-trades" }, "this run published no trade events"));
    return undefined;
  }
  const grid = el("div", { class: "charts" });
  root.append(el("h3", {}, "Statistics"), statisticsTable(data.statistics), el("h3", {}, "Charts"), grid);
  const box = (testid) => { const b = el("div", { class: "chart", testid }); grid.append(b); return b; };
  const width = () => Math.max(420, (grid.firstChild?.clientWidth || 560) - 12);
  const charts = [
    lineChart(box("chart-cumulative-pnl"), { title: "cumulative P&L", xLabel: "trade", series: [{ label: "P&L", x: v.cumulative_pnl.x, y: v.cumulative_pnl.y, color: "#1f77b4" }] }),
    lineChart(box("chart-drawdown"), { title: "drawdown", xLabel: "trade", series: [{ label: "drawdown", x: v.drawdown.x, y: v.drawdown.y, color: LOSS }] }),
  ];
  const edges = v.distribution.edges;
  const centers = edges.slice(0, -1).map((e, i) => fmt((e + edges[i + 1]) / 2));
  barChart(box("chart-distribution"), { title: "win/loss distribution (P&L per trade)", labels: centers, width: width(),
    series: [{ label: "wins", values: v.distribution.wins, color: WIN }, { label: "losses", values: v.distribution.losses, color: LOSS }] });
  const dr = v.duration_vs_return;
  scatter(box("chart-duration-return"), { durations: dr.duration, returns: dr.return, wins: dr.win, width: width() });
  barChart(box("chart-hour-win-rate"), { title: "win rate by hour of day", labels: v.by_hour.hour, width: width(),
    series: [{ label: "win rate", values: v.by_hour.win_rate, color: "#1f77b4" }] });
  barChart(box("chart-hour-pnl"), { title: "P&L by hour of day", labels: v.by_hour.hour, width: width(),
    series: [{ label: "P&L", values: v.by_hour.pnl, color: "#9467bd" }] });
  const sides = Object.keys(v.long_short);
  for (const [field, label] of [["pnl", "P&L"], ["win_rate", "win rate"]]) {
    barChart(box(`chart-long-short-${field.replace("_", "-")}`), { title: `${label}: long against short`, labels: sides, width: width(),
      series: [{ label, values: sides.map((side) => v.long_short[side][field]), color: field === "pnl" ? "#17becf" : "#ff7f0e" }] });
  }
  if (v.by_step.step.length > 1) {
    charts.push(lineChart(box("chart-by-step"), { title: `P&L per ${v.by_step.axis}`, xLabel: v.by_step.axis,
      series: [{ label: "P&L", x: v.by_step.step, y: v.by_step.pnl, color: "#8c564b" }] }));
  }
  root.append(el("h3", {}, "Long and short"), longShortTable(v.long_short));
  return () => charts.forEach((c) => c.destroy());
}
