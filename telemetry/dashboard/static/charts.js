// Line charts on uPlot: several series on one x axis, raw lines faint beneath smoothed
// ones, evaluation points, mean ± std bands, hover values, drag to zoom.
import { smooth } from "./smoothing.js";

export const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
  "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];

function faint(color, alpha) {
  const n = parseInt(color.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${alpha})`;
}

// uPlot wants one shared x: join each series' own (x, y) table.
function layout(series, smoothing) {
  const tables = [];
  const configs = [];
  const bands = [];
  series.forEach((s, i) => {
    const color = s.color || PALETTE[i % PALETTE.length];
    if (s.kind === "band") {
      const hi = s.mean.map((m, j) => (m === null || s.std[j] === null ? null : m + s.std[j]));
      const lo = s.mean.map((m, j) => (m === null || s.std[j] === null ? null : m - s.std[j]));
      const at = configs.length + 1;
      tables.push([s.x, hi], [s.x, lo]);
      configs.push({ label: `${s.label} mean+std`, stroke: faint(color, 0.35), width: 1, spanGaps: true },
        { label: `${s.label} mean−std`, stroke: faint(color, 0.35), width: 1, spanGaps: true });
      bands.push({ series: [at, at + 1], fill: faint(color, 0.12) });
      return;
    }
    if (s.kind === "points") {
      tables.push([s.x, s.y]);
      configs.push({ label: s.label, stroke: color, fill: color, width: 0, paths: () => null,
        points: { show: true, size: 7, stroke: color, fill: color } });
      return;
    }
    const smoothed = smoothing ? smooth(s.x, s.y, smoothing.mode, smoothing.param) : null;
    tables.push([s.x, s.y]);
    configs.push({ label: smoothed ? `${s.label} (raw)` : s.label,
      stroke: smoothed ? faint(color, 0.25) : color, width: 1, spanGaps: !!s.spanGaps });
    if (smoothed) {
      tables.push([s.x, smoothed]);
      configs.push({ label: s.label, stroke: color, width: 2, spanGaps: !!s.spanGaps });
    }
  });
  const data = tables.length ? uPlot.join(tables) : [[]];
  return { data, configs, bands };
}

function signature(configs) {
  return configs.map((c) => c.label).join("|");
}

export function lineChart(el, options) {
  let current = options;
  let plot = null;
  let shape = "";
  const box = document.createElement("div");
  el.append(box);

  function opts(configs, bands) {
    return {
      title: current.title,
      width: Math.max(300, el.clientWidth || 600),
      height: current.height || 220,
      scales: { x: { time: !!current.xTime } },
      // Wide enough for the longest tick label (uPlot's default cuts 50,000 to "0,000").
      axes: [{}, { size: (u, values) => (values ? Math.max(...values.map((v) => String(v).length)) * 7 + 24 : 50) }],
      series: [{ label: current.xLabel || "x" }, ...configs],
      bands,
      legend: { live: true },
      cursor: { drag: { x: true, y: false, setScale: true } },
      hooks: {
        setSelect: [(u) => {
          if (u.select.width < 2 || !current.onZoom) return;
          const min = u.posToVal(u.select.left, "x");
          const max = u.posToVal(u.select.left + u.select.width, "x");
          current.onZoom(min, max);
        }],
        ready: [(u) => {
          u.over.addEventListener("dblclick", () => current.onZoom && current.onZoom(null, null));
        }],
      },
    };
  }

  function draw(resetScales) {
    const { data, configs, bands } = layout(current.series, current.smoothing);
    const next = signature(configs) + (current.xTime ? "|t" : "|s");
    el.__chartData = current.series.map((s) => ({ label: s.label, kind: s.kind || "line", x: s.x, y: s.y }));
    el.dataset.points = String(current.series.reduce((n, s) => n + (s.x ? s.x.length : 0), 0));
    if (plot && next === shape) {
      plot.setData(data, resetScales);
      return;
    }
    if (plot) plot.destroy();
    shape = next;
    plot = new uPlot(opts(configs, bands), data, box);
    el.dataset.drawn = "true";
  }

  draw(true);
  return {
    get plot() { return plot; },
    update(changes, resetScales = true) {
      current = { ...current, ...changes };
      draw(resetScales);
    },
    destroy() { if (plot) plot.destroy(); plot = null; },
  };
}
