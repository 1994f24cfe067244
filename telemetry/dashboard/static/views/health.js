// A run's pipeline health: per sink delivered, failed, pending, spilled over time (a sink that
// is behind stands out), the bus's own counters, system/ metrics, alerts and log records.
import { getJSON, runPath } from "../api.js";
import { lineChart } from "../charts.js";
import { el, fmt, when } from "../format.js";

const FIELDS = [["delivered", "#2ca02c"], ["failed", "#d62728"], ["pending", "#ff7f0e"], ["spilled", "#9467bd"]];

function chartIn(parent, attrs, options) {
  const box = el("div", { class: "chart", ...attrs });
  parent.append(box);
  return lineChart(box, { xTime: true, xLabel: "time", height: 200, ...options });
}

function sinkChart(grid, data, sink) {
  const behind = sink.behind;
  const box = el("div", {
    class: "chart", testid: "sink-chart", "data-sink": sink.name, "data-behind": String(behind),
    style: behind ? "border:2px solid #d62728;background:#fff4f4" : null,
  },
  el("div", { style: "font-size:13px;padding:2px 4px" }, el("strong", {}, sink.name), " ",
    behind ? el("span", { class: "error", testid: "sink-behind" }, `behind: ${sink.reasons.join(", ")}`)
      : el("span", { class: "muted" }, "keeping up")));
  grid.append(box);
  return lineChart(box, {
    title: `sink ${sink.name}`, xTime: true, xLabel: "time", height: 200,
    series: FIELDS.map(([field, color]) => ({ label: field, x: data.time, y: sink[field], color })),
  });
}

function table(rows, columns, testid, empty) {
  if (!rows.length) return el("p", { class: "muted", testid }, empty);
  return el("table", { testid },
    el("thead", {}, el("tr", {}, columns.map(([name]) => el("th", {}, name)))),
    el("tbody", {}, rows.map((row) => el("tr", { testid: `${testid}-row`, "data-level": row.level },
      columns.map(([, cell]) => el("td", {}, cell(row)))))));
}

const LEVEL_STYLE = { ERROR: "color:#b00;font-weight:600", WARN: "color:#b36b00", WARNING: "color:#b36b00", CRITICAL: "color:#b00;font-weight:600" };
const level = (row) => el("span", { style: LEVEL_STYLE[String(row.level).toUpperCase()] || null }, row.level);

export async function render(root, id) {
  root.append(el("p", { class: "muted", testid: "loading" }, "reading the log…"));
  const data = await getJSON(`/api/run/${runPath(id)}/health`);
  root.replaceChildren();
  const charts = [];
  const banner = data.behind.length
    ? el("p", { class: "problems", testid: "behind" }, el("strong", {}, "behind: "), data.behind.join(", "))
    : el("p", { class: "muted", testid: "behind", "data-count": "0" }, data.sinks.length ? "every sink is keeping up" : "this run published no health events (health_interval)");
  const sinks = el("div", { class: "charts", testid: "sinks" });
  const pipeline = el("div", { class: "charts" });
  const system = el("div", { class: "charts", testid: "system" });
  root.append(
    el("h2", {}, "pipeline health and system ", el("a", { href: `#/run/${encodeURIComponent(id)}`, style: "font-size:14px" }, id)),
    el("div", {}, data.problems.length ? el("div", { class: "problems", testid: "problems", "data-count": String(data.problems.length) },
      el("ul", {}, data.problems.slice(0, 50).map((p) => el("li", { testid: "problem" }, `line ${p.line}: ${p.reason}`)))) : null),
    banner, el("h3", {}, "Sinks"),
    data.thinned ? el("p", { class: "muted", testid: "thinned" }, `${data.samples} health samples, shown as ${data.time.length} points (counts at each point's end, the highest pending)`) : "",
    sinks, el("h3", {}, "Pipeline"), pipeline,
    el("h3", {}, "System"), system,
    el("h3", {}, "Alerts"),
    table(data.alerts, [["time", (r) => when(r.time)], ["level", level], ["title", (r) => r.title],
      ["text", (r) => r.text], ["key", (r) => r.key || ""], ["step", (r) => (r.step === null ? "" : `${r.axis} ${r.step}`)]],
    "alerts", "no alerts"),
    el("h3", {}, "Log records", data.records_total > data.records.length ? ` (last ${data.records.length} of ${data.records_total})` : ""),
    table(data.records, [["time", (r) => when(r.time)], ["level", level], ["logger", (r) => r.logger],
      ["message", (r) => r.message], ["fields", (r) => fmt(r.fields)]], "records", "no log records"));
  // The behind sinks first: they are what the page is opened for.
  [...data.sinks].sort((a, b) => Number(b.behind) - Number(a.behind)).forEach((s) => charts.push(sinkChart(sinks, data, s)));
  const counters = Object.entries(data.pipeline);
  if (counters.length) {
    charts.push(chartIn(pipeline, { testid: "pipeline-chart" }, {
      title: "bus counters", series: counters.map(([key, y]) => ({ label: key.replace("telemetry/", ""), x: data.time, y })),
    }));
  }
  const keys = Object.keys(data.system);
  if (!keys.length) system.append(el("p", { class: "muted" }, "this run published no system metrics (system_interval)"));
  for (const key of keys) {
    const s = data.system[key];
    charts.push(chartIn(system, { testid: "system-chart", "data-key": key }, { title: key, series: [{ label: key, x: s.time, y: s.y }] }));
  }
  return () => charts.forEach((c) => c.destroy());
}
