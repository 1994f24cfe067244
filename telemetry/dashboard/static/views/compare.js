// Several runs overlaid on the same charts, and the table of their config differences.
import { getJSON, runPath } from "../api.js";
import { PALETTE } from "../charts.js";
import { el, fmt } from "../format.js";
import { chartBox, fetchSeries, makeChart, seriesPath } from "../series.js";
import { smoothingOf } from "./run.js";

export async function render(root, arg) {
  const ids = arg.split(",").filter(Boolean);
  const answer = await getJSON(`/api/compare?ids=${ids.map(encodeURIComponent).join(",")}`);
  const names = {};
  const details = await Promise.all(ids.map((id) => getJSON(`/api/run/${runPath(id)}`)));
  details.forEach((d, i) => { names[ids[i]] = d.summary.name || ids[i]; });
  const settings = { axis: "step", mode: "ema", param: 0.6 };
  const diffRows = answer.differences.map((d) => el("tr", { testid: "diff-row" }, el("td", {}, d.key),
    ids.map((id) => el("td", {}, fmt(d.values[id])))));
  root.append(
    el("h2", {}, "Compare ", ids.length, " runs"),
    el("div", { class: "toolbar", testid: "compare-runs" }, ids.map((id, i) =>
      el("a", { href: `#/run/${encodeURIComponent(id)}`, style: `color:${PALETTE[i % PALETTE.length]}` }, names[id]))),
    el("h3", {}, "Config differences"),
    diffRows.length ? el("table", { testid: "config-diff" },
      el("thead", {}, el("tr", {}, el("th", {}, "key"), ids.map((id) => el("th", {}, names[id])))),
      el("tbody", {}, diffRows)) : el("p", { class: "muted", testid: "config-diff" }, "the configs are the same"));
  const grid = el("div", { class: "charts", testid: "charts" });
  root.append(el("h3", {}, "Metrics"), grid);

  const perRun = await Promise.all(ids.map((id) => fetchSeries(id, answer.keys, settings.axis, 560)));
  const charts = {};
  for (const key of answer.keys) {
    const series = [];
    perRun.forEach((entries, i) => {
      const entry = entries[key];
      if (entry) series.push({ label: names[ids[i]], x: entry.x, y: entry.y, color: PALETTE[i % PALETTE.length], spanGaps: true });
    });
    const box = chartBox(key);
    grid.append(box);
    const zoom = async (min, max) => {
      const answers = await Promise.all(ids.map((id) => getJSON(seriesPath(id, [key], settings.axis, 560, min, max))));
      const next = [];
      answers.forEach((a, i) => {
        const entry = a.series[key];
        if (entry) next.push({ label: names[ids[i]], x: entry.x, y: entry.y, color: PALETTE[i % PALETTE.length], spanGaps: true });
      });
      charts[key].update({ series: next }, min === null);
    };
    const xLabel = perRun.map((entries) => entries[key]?.axis).find(Boolean) || "step";
    charts[key] = makeChart(box, key, series, { smoothing: smoothingOf(settings), onZoom: zoom, xLabel });
  }
  return () => Object.values(charts).forEach((c) => c.destroy());
}
