// One run: a chart per metric key grouped by namespace, live; config, system info, artifacts.
import { getJSON, runPath, stream } from "../api.js";
import { el, fmt, keyValues, flat, when, duration } from "../format.js";
import { appendEvent, chartBox, fetchSeries, makeChart, seriesOf, seriesPath } from "../series.js";

function controls(settings, redraw) {
  const axis = el("select", { testid: "x-axis", onchange: (e) => { settings.axis = e.target.value; redraw(true); } },
    el("option", { value: "step" }, "step"), el("option", { value: "time" }, "wall time"));
  const mode = el("select", { testid: "smoothing", onchange: (e) => {
    settings.mode = e.target.value;
    // The EMA takes a weight in [0, 1); the running average a window of points.
    settings.param = settings.mode === "avg" ? 10 : 0.6;
    param.value = String(settings.param);
    param.step = settings.mode === "avg" ? "1" : "0.05";
    redraw(false);
  } },
    el("option", { value: "ema" }, "time-weighted EMA"), el("option", { value: "avg" }, "running average"),
    el("option", { value: "none" }, "no smoothing"));
  const param = el("input", { type: "number", step: "0.05", min: "0", value: String(settings.param), testid: "smoothing-param",
    oninput: (e) => { settings.param = Number(e.target.value); redraw(false); } });
  return el("div", { class: "toolbar" }, el("label", {}, "x ", axis), el("label", {}, "smoothing ", mode), param);
}

export function smoothingOf(settings) {
  return settings.mode === "none" ? null : { mode: settings.mode, param: settings.param };
}

function problemsBox(problems) {
  if (!problems.length) return el("div", { testid: "problems", "data-count": "0" });
  return el("div", { class: "problems", testid: "problems", "data-count": String(problems.length) },
    el("strong", {}, `${problems.length} problem line(s) in the log, skipped:`),
    el("ul", {}, problems.slice(0, 50).map((p) => el("li", { testid: "problem" }, `line ${p.line ?? "?"}: ${p.reason}`))));
}

function artifactsTable(artifacts) {
  if (!artifacts.length) return el("p", { class: "muted", testid: "artifacts" }, "none");
  return el("table", { testid: "artifacts" },
    el("thead", {}, el("tr", {}, ["name", "kind", "step", "path", "metadata"].map((h) => el("th", {}, h)))),
    el("tbody", {}, artifacts.map((a) => el("tr", {}, el("td", {}, a.name), el("td", {}, a.kind),
      el("td", {}, `${a.axis} ${a.step}`), el("td", {}, a.path), el("td", {}, fmt(a.metadata))))));
}

export async function render(root, id) {
  const details = await getJSON(`/api/run/${runPath(id)}`);
  const s = details.summary;
  const settings = { axis: "step", mode: "ema", param: 0.6 };
  const status = el("span", { class: `status-${s.status}`, testid: "run-status" }, s.status);
  const problemSlot = el("div", {}, problemsBox(details.problems));
  const links = el("div", { class: "toolbar" },
    s.has_trades ? el("a", { href: `#/trades/${encodeURIComponent(id)}`, testid: "link-trades" }, "trades") : null,
    el("a", { href: `#/health/${encodeURIComponent(id)}`, testid: "link-health" }, "pipeline health and system"),
    s.sweep ? el("a", { href: `#/sweep/${encodeURIComponent(id.split("/").slice(0, 2).join("/"))}` }, "sweep") : null);
  const chartsRoot = el("div", { testid: "charts" });
  const entries = {};
  const charts = {};
  const boxes = {};
  root.append(
    el("h2", { testid: "run-name" }, s.name, " ", status),
    el("p", { class: "muted" }, `${s.trainer || ""} · ${s.project || ""} · started ${when(s.start)} · ${duration(s.duration)}`,
      s.group ? ` · group ${s.group}` : "", (s.tags || []).map((t) => el("span", { class: "tag" }, t))),
    links, problemSlot, controls(settings, redraw), chartsRoot,
    el("h3", {}, "Config"), keyValues(flat(details.config), "config"),
    el("h3", {}, "Hyperparameters"), keyValues(details.hyperparameters, "hyperparameters"),
    el("h3", {}, "System info"), keyValues(details.system_info, "system-info"),
    el("h3", {}, "Artifacts"), artifactsTable(details.artifacts));
  if (details.error) root.append(el("p", { class: "error", testid: "run-error" }, details.error));

  const sections = {};
  function boxFor(key) {
    if (boxes[key]) return boxes[key];
    chartsRoot.querySelector('[data-testid="no-metrics"]')?.remove();
    const namespace = key.includes("/") ? key.split("/")[0] : "";
    if (!sections[namespace]) {
      const grid = el("div", { class: "charts" });
      chartsRoot.append(el("section", { testid: "namespace", "data-namespace": namespace }, el("h3", {}, namespace || "(no namespace)"), grid));
      sections[namespace] = grid;
    }
    boxes[key] = chartBox(key);
    sections[namespace].append(boxes[key]);
    return boxes[key];
  }

  const widthOf = (key) => Math.max(200, Math.round((boxes[key]?.clientWidth || 600) - 20));
  const options = (key) => ({
    xTime: settings.axis === "time", xLabel: settings.axis === "time" ? "time" : entries[key]?.axis || "step",
    smoothing: smoothingOf(settings), onZoom: (min, max) => zoom(key, min, max),
  });

  function show(key, resetScales = true) {
    const entry = entries[key];
    if (!entry) return;
    if (charts[key]) charts[key].update({ series: seriesOf(key, entry), ...options(key) }, resetScales);
    else charts[key] = makeChart(boxFor(key), key, seriesOf(key, entry), options(key));
  }

  async function zoom(key, min, max) {
    const answer = await getJSON(seriesPath(id, [key], settings.axis, widthOf(key), min, max));
    if (!answer.series[key]) return;
    entries[key] = answer.series[key];
    show(key, min === null);
  }

  async function load(keys) {
    keys.forEach(boxFor);
    Object.assign(entries, await fetchSeries(id, keys, settings.axis, widthOf(keys[0])));
    keys.forEach((key) => show(key));
  }

  async function redraw(refetch) {
    if (refetch) await load(Object.keys(entries));
    else Object.keys(entries).forEach((key) => show(key, false));
  }

  const allKeys = Object.values(details.keys).flat();
  if (allKeys.length) await load(allKeys);
  else chartsRoot.append(el("p", { class: "muted", testid: "no-metrics" }, "no metrics yet"));

  // A large log the server is still reading: draw what it has, redraw as it reads on,
  // and only then follow the log live from where the reading ended.
  const banner = el("p", { class: "muted", testid: "loading" });
  let closed = false;
  let live = null;
  const reading = (d) => d.read.offset < d.read.size;

  // Live: the server pushes what is appended after the offset this page was drawn from.
  let pending = new Set();
  let frame = null;
  const loading = new Set();
  const flush = () => {
    frame = null;
    const fresh = [...pending].filter((k) => !entries[k] && !loading.has(k));
    [...pending].filter((k) => entries[k]).forEach((k) => show(k, true));
    pending = new Set();
    fresh.forEach((k) => loading.add(k));
    if (fresh.length) load(fresh).finally(() => fresh.forEach((k) => loading.delete(k)));
  };
  const onMessage = (message) => {
    for (const event of message.events) {
      appendEvent(entries, event, settings.axis).forEach((k) => pending.add(k));
      if (event.type === "run_finished") { status.textContent = event.status; status.className = `status-${event.status}`; }
      if (event.type === "run_started") { status.textContent = "running"; status.className = "status-running"; }
    }
    if (message.problems) getJSON(`/api/run/${runPath(id)}`).then((d) => problemSlot.replaceChildren(problemsBox(d.problems)));
    if (pending.size && frame === null) frame = setTimeout(flush, 20);
    document.body.dataset.liveOffset = String(message.offset);
  };

  async function follow() {
    let d = details;
    if (reading(d)) chartsRoot.before(banner);
    while (reading(d) && !closed) {
      banner.textContent = `reading the log: ${Math.round((100 * d.read.offset) / d.read.size)}%`;
      await new Promise((resolve) => setTimeout(resolve, 700));
      d = await getJSON(`/api/run/${runPath(id)}`);
      const keys = Object.values(d.keys).flat();
      if (keys.length && !closed) await load(keys);
    }
    banner.remove();
    if (!closed) live = stream(`/api/run/${runPath(id)}/events?after=${d.offset}`, onMessage);
  }
  follow().catch((error) => { banner.textContent = `could not read the run: ${error.message}`; });
  return () => {
    closed = true;
    if (live) live.close();
    Object.values(charts).forEach((c) => c.destroy());
  };
}
