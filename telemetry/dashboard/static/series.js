// A chart per metric key, fed by the series endpoint, zoomable, appended to live.
import { getJSON, runPath, num } from "./api.js";
import { lineChart } from "./charts.js";
import { el } from "./format.js";

export function seriesPath(id, keys, axis, width, start, end) {
  let path = `/api/run/${runPath(id)}/series?keys=${keys.map(encodeURIComponent).join(",")}&x=${axis}&width=${width}`;
  if (start !== null && start !== undefined) path += `&start=${start}&end=${end}`;
  return path;
}

// Fetch many keys' series in batches, in parallel.
export async function fetchSeries(id, keys, axis, width) {
  const batches = [];
  for (let i = 0; i < keys.length; i += 40) batches.push(keys.slice(i, i + 40));
  const answers = await Promise.all(batches.map((b) => getJSON(seriesPath(id, b, axis, width))));
  return Object.assign({}, ...answers.map((a) => a.series));
}

// The chart's inputs for one run's key: its line, evaluation points, aggregate band.
export function seriesOf(label, entry, color) {
  const out = [{ label, x: entry.x, y: entry.y, color }];
  if (entry.evaluations) out.push({ label: `${label} eval`, kind: "points", x: entry.evaluations.x, y: entry.evaluations.y, color: "#d62728" });
  if (entry.aggregates) out.push({ label: `${label} window`, kind: "band", x: entry.aggregates.x, mean: entry.aggregates.mean, std: entry.aggregates.std, color });
  return out;
}

// Append one live event to the entries it touches; returns the keys it changed.
export function appendEvent(entries, event, axis) {
  const x = axis === "time" ? event.time : event.step;
  const touched = [];
  const values = event.values || {};
  if (event.type === "metrics" || event.type === "evaluation") {
    for (const [key, value] of Object.entries(values)) {
      const entry = entries[key];
      if (!entry) { touched.push(key); continue; }
      const target = event.type === "evaluation" && entry.line !== "evaluation"
        ? (entry.evaluations ||= { x: [], y: [] }) : entry;
      target.x.push(x);
      target.y.push(num(value));
      touched.push(key);
    }
  } else if (event.type === "aggregate") {
    for (const [key, entry] of Object.entries(entries)) {
      if (values[`${key}/mean`] === undefined) continue;
      const band = (entry.aggregates ||= { x: [], mean: [], std: [] });
      band.x.push(x);
      band.mean.push(num(values[`${key}/mean`]));
      band.std.push(num(values[`${key}/std`]));
      touched.push(key);
    }
  }
  return touched;
}

// A chart box for a key inside a namespace section, with a test id.
export function chartBox(key) {
  return el("div", { class: "chart", testid: "chart", "data-key": key });
}

export function makeChart(box, key, series, options) {
  const chart = lineChart(box, { title: key, series, ...options });
  window.__charts = window.__charts || {};
  window.__charts[key] = box;
  return chart;
}
