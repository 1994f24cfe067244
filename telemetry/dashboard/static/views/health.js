// A run's pipeline health: per sink delivered, failed, pending, spilled over time (a sink that
// is behind stands out), the bus's own counters, system/ metrics, alerts and log records.
// Live: the page follows the log from where its first answer ended and appends what comes.
import { getJSON, num, runPath, stream } from "../api.js";
import { lineChart } from "../charts.js";
import { el, fmt, when } from "../format.js";

const FIELDS = [["delivered", "#2ca02c"], ["failed", "#d62728"], ["pending", "#ff7f0e"], ["spilled", "#9467bd"]];
const FIELD_NAMES = ["delivered", "failed", "queued", "spilled", "pending"];
const PREFIX = "telemetry/";
const LEVEL_STYLE = { ERROR: "color:#b00;font-weight:600", WARN: "color:#b36b00", WARNING: "color:#b36b00", CRITICAL: "color:#b00;font-weight:600" };
const ALERT_COLUMNS = [["time", (r) => when(r.time)], ["level", level], ["title", (r) => r.title], ["text", (r) => r.text],
  ["key", (r) => r.key || ""], ["step", (r) => (r.step === null || r.step === undefined ? "" : `${r.axis} ${r.step}`)]];
const RECORD_COLUMNS = [["time", (r) => when(r.time)], ["level", level], ["logger", (r) => r.logger],
  ["message", (r) => r.message], ["fields", (r) => fmt(r.fields)]];

function level(row) {
  return el("span", { style: LEVEL_STYLE[String(row.level).toUpperCase()] || null }, row.level);
}

// The server's rule (telemetry/stats/health.py behind_reasons), for samples that come live.
function reasons(sink, growing) {
  const out = [];
  const last = (name) => sink[name].filter((v) => v !== null).at(-1) || 0;
  if (last("failed") > 0) out.push(`${fmt(last("failed"))} failed`);
  if (last("spilled") > 0) out.push(`${fmt(last("spilled"))} spilled`);
  const tail = sink.pending.filter((v) => v !== null).slice(-(growing + 1));
  if (tail.length === growing + 1 && tail.every((v, i) => i === 0 || v > tail[i - 1])) {
    out.push(`pending growing (${fmt(tail[0])} to ${fmt(tail.at(-1))})`);
  }
  return out;
}

function table(columns, testid, empty) {
  const body = el("tbody", {});
  const wrap = el("div", {}, el("p", { class: "muted", testid }, empty));
  const add = (rows) => {
    if (!rows.length) return;
    if (!body.isConnected) {
      wrap.replaceChildren(el("table", { testid }, el("thead", {}, el("tr", {}, columns.map(([name]) => el("th", {}, name)))), body));
    }
    body.append(...rows.map((row) => el("tr", { testid: `${testid}-row`, "data-level": row.level },
      columns.map(([, cell]) => el("td", {}, cell(row))))));
  };
  return { node: wrap, add };
}

export async function render(root, id) {
  root.append(el("p", { class: "muted", testid: "loading" }, "reading the log…"));
  const details = await getJSON(`/api/run/${runPath(id)}`); // its offset: where following starts
  const data = await getJSON(`/api/run/${runPath(id)}/health`);
  root.replaceChildren();
  const charts = {};
  const banner = el("p", { testid: "behind" });
  const sinksGrid = el("div", { class: "charts", testid: "sinks" });
  const pipeline = el("div", { class: "charts" });
  const system = el("div", { class: "charts", testid: "system" });
  const noSystem = el("p", { class: "muted" }, "this run published no system metrics (system_interval)");
  const alerts = table(ALERT_COLUMNS, "alerts", "no alerts");
  const records = table(RECORD_COLUMNS, "records", "no log records");
  root.append(
    el("h2", {}, "pipeline health and system ", el("a", { href: `#/run/${encodeURIComponent(id)}`, style: "font-size:14px" }, id)),
    el("div", {}, data.problems.length ? el("div", { class: "problems", testid: "problems", "data-count": String(data.problems.length) },
      el("ul", {}, data.problems.slice(0, 50).map((p) => el("li", { testid: "problem" }, `line ${p.line}: ${p.reason}`)))) : null),
    banner, el("h3", {}, "Sinks"),
    data.thinned ? el("p", { class: "muted", testid: "thinned" }, `${data.samples} health samples, shown as ${data.time.length} points (counts at each point's end, the highest pending)`) : "",
    sinksGrid, el("h3", {}, "Pipeline"), pipeline, el("h3", {}, "System"), system,
    el("h3", {}, "Alerts"), alerts.node,
    el("h3", {}, "Log records", data.records_total > data.records.length ? ` (last ${data.records.length} of ${data.records_total})` : ""),
    records.node);
  system.append(noSystem);
  alerts.add(data.alerts);
  records.add(data.records);

  function sinkBox(sink) {
    const note = el("span", {});
    const box = el("div", { class: "chart", testid: "sink-chart", "data-sink": sink.name },
      el("div", { style: "font-size:13px;padding:2px 4px" }, el("strong", {}, sink.name), " ", note));
    // The behind sinks first: they are what the page is opened for.
    if (sink.behind) sinksGrid.prepend(box); else sinksGrid.append(box);
    return { box, note, chart: null };
  }

  function drawSinks() {
    for (const sink of data.sinks) {
      const view = charts[`sink:${sink.name}`] ||= sinkBox(sink);
      view.box.dataset.behind = String(sink.behind);
      view.box.style.cssText = sink.behind ? "border:2px solid #d62728;background:#fff4f4" : "";
      view.note.replaceChildren(sink.behind ? el("span", { class: "error", testid: "sink-behind" }, `behind: ${sink.reasons.join(", ")}`)
        : el("span", { class: "muted" }, "keeping up"));
      const series = FIELDS.map(([field, color]) => ({ label: field, x: data.time, y: sink[field], color }));
      if (view.chart) view.chart.update({ series });
      else view.chart = lineChart(view.box, { title: `sink ${sink.name}`, xTime: true, xLabel: "time", height: 200, series });
    }
    const behind = data.sinks.filter((s) => s.behind).map((s) => s.name);
    banner.className = behind.length ? "problems" : "muted";
    banner.replaceChildren(behind.length ? el("strong", {}, `behind: ${behind.join(", ")}`)
      : data.sinks.length ? "every sink is keeping up" : "this run published no health events (health_interval)");
    const counters = Object.entries(data.pipeline);
    if (!counters.length) return;
    const series = counters.map(([key, y]) => ({ label: key.replace(PREFIX, ""), x: data.time, y }));
    if (charts.pipeline) charts.pipeline.update({ series });
    else {
      const box = el("div", { class: "chart", testid: "pipeline-chart" });
      pipeline.append(box);
      charts.pipeline = lineChart(box, { title: "bus counters", xTime: true, xLabel: "time", height: 200, series });
    }
  }

  function drawSystem(keys) {
    for (const key of keys) {
      const s = data.system[key];
      const series = [{ label: key, x: s.time, y: s.y }];
      if (charts[key]) { charts[key].update({ series }); continue; }
      noSystem.remove();
      const box = el("div", { class: "chart", testid: "system-chart", "data-key": key });
      system.append(box);
      charts[key] = lineChart(box, { title: key, xTime: true, xLabel: "time", height: 200, series });
    }
  }

  drawSinks();
  drawSystem(Object.keys(data.system).sort());

  function addSample(event) {
    data.time.push(event.time);
    data.step.push(event.step);
    const names = new Set(data.sinks.map((s) => s.name));
    for (const key of Object.keys(event.values)) {
      const [sink, field] = [key.slice(PREFIX.length, key.lastIndexOf("/")), key.slice(key.lastIndexOf("/") + 1)];
      if (key.startsWith(PREFIX) && sink && FIELD_NAMES.includes(field) && !names.has(sink)) {
        names.add(sink);
        data.sinks.push({ name: sink, ...Object.fromEntries(FIELD_NAMES.map((f) => [f, data.time.slice(1).map(() => null)])) });
      }
    }
    for (const sink of data.sinks) {
      FIELD_NAMES.forEach((f) => sink[f].push(num(event.values[`${PREFIX}${sink.name}/${f}`])));
      sink.reasons = reasons(sink, data.growing);
      sink.behind = sink.reasons.length > 0;
    }
    for (const [key, value] of Object.entries(event.values)) {
      if (!key.startsWith(PREFIX) || key.slice(PREFIX.length).includes("/")) continue;
      (data.pipeline[key] ||= data.time.slice(1).map(() => null)).push(num(value));
    }
  }

  let lastSeq = data.last_seq;
  let frame = null;
  const dirty = new Set();
  const flush = () => {
    frame = null;
    if (dirty.delete("sinks")) drawSinks();
    drawSystem([...dirty].sort());
    dirty.clear();
    document.body.dataset.healthSeq = String(lastSeq);
  };
  const live = stream(`/api/run/${runPath(id)}/events?after=${details.offset}`, (message) => {
    const newAlerts = [];
    const newRecords = [];
    for (const event of message.events) {
      if (event.seq <= lastSeq) continue; // already in the first answer
      lastSeq = event.seq;
      if (event.type === "health") { addSample(event); dirty.add("sinks"); }
      else if (event.type === "alert") newAlerts.push(event);
      else if (event.type === "log_record") newRecords.push(event);
      else if (event.type === "metrics") {
        for (const [key, value] of Object.entries(event.values)) {
          if (!key.startsWith("system/")) continue;
          const s = (data.system[key] ||= { x: [], time: [], y: [] });
          s.x.push(event.step); s.time.push(event.time); s.y.push(num(value));
          dirty.add(key);
        }
      }
    }
    alerts.add(newAlerts);
    records.add(newRecords);
    if (frame === null) frame = setTimeout(flush, 100);
  });
  return () => { live.close(); clearTimeout(frame); Object.values(charts).forEach((c) => (c.box ? c.chart : c)?.destroy()); };
}
