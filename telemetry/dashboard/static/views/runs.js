// The runs table: every run under the runs folder, sortable and filterable, live;
// select runs and compare them. Sweeps are listed below, linking to their pages.
import { getJSON, stream } from "../api.js";
import { el, fmt, when, duration } from "../format.js";

const BASE = [
  ["name", "name"], ["trainer", "trainer"], ["status", "status"], ["start", "start"],
  ["duration", "duration"], ["tags", "tags"], ["group", "group"],
];

export async function render(root) {
  const data = await getJSON("/api/runs");
  const rows = new Map(data.runs.map((r) => [r.id, r]));
  let sweeps = data.sweeps;
  const selected = new Set();
  let sortKey = "start";
  let sortDesc = true;
  let filter = "";
  const metricKeys = () => {
    const counts = new Map();
    for (const r of rows.values()) for (const k of Object.keys(r.metrics)) counts.set(k, (counts.get(k) || 0) + 1);
    return [...counts.keys()].sort();
  };
  let shown = metricKeys().slice(0, 3);

  const filterBox = el("input", { type: "search", placeholder: "filter runs", testid: "runs-filter",
    oninput: (e) => { filter = e.target.value.toLowerCase(); draw(); } });
  const picker = el("select", { testid: "metric-pick", onchange: (e) => {
    if (e.target.value && !shown.includes(e.target.value)) shown.push(e.target.value);
    e.target.value = "";
    draw();
  } });
  const compare = el("button", { testid: "compare", disabled: true, onclick: () => {
    location.hash = `#/compare/${[...selected].map(encodeURIComponent).join(",")}`;
  } }, "Compare");
  const table = el("table", { testid: "runs-table" });
  const sweepBox = el("div", { testid: "sweeps" });
  root.append(el("h2", {}, "Runs"),
    el("div", { class: "toolbar" }, filterBox, el("label", {}, "add metric column ", picker), compare),
    table, sweepBox);

  function value(r, key) {
    if (key.startsWith("last:")) return r.metrics[key.slice(5)]?.last ?? null;
    if (key.startsWith("best:")) return r.metrics[key.slice(5)]?.best ?? null;
    const v = r[key];
    return Array.isArray(v) ? v.join(",") : v;
  }

  function draw() {
    picker.replaceChildren(el("option", { value: "" }, "…"), ...metricKeys().filter((k) => !shown.includes(k)).map((k) => el("option", { value: k }, k)));
    const columns = [...BASE, ...shown.flatMap((k) => [[`last:${k}`, `${k} last`], [`best:${k}`, `${k} best`]])];
    const head = el("tr", {}, el("th", {}, ""), columns.map(([key, label]) => el("th", {
      class: "sortable", testid: `sort-${key}`,
      onclick: () => { sortDesc = sortKey === key ? !sortDesc : false; sortKey = key; draw(); },
    }, label + (sortKey === key ? (sortDesc ? " ▼" : " ▲") : ""))));
    let list = [...rows.values()].filter((r) => !filter ||
      [r.name, r.trainer, r.status, r.group, r.id, ...(r.tags || [])].join(" ").toLowerCase().includes(filter));
    list.sort((a, b) => {
      const x = value(a, sortKey); const y = value(b, sortKey);
      const order = x === y ? 0 : x === null || x === undefined ? 1 : y === null || y === undefined ? -1 : x < y ? -1 : 1;
      return sortDesc ? -order : order;
    });
    const body = el("tbody", {}, list.map((r) => el("tr", { testid: "run-row", "data-id": r.id },
      el("td", {}, el("input", { type: "checkbox", testid: "run-select", checked: selected.has(r.id),
        onchange: (e) => { if (e.target.checked) selected.add(r.id); else selected.delete(r.id); compare.disabled = selected.size < 2; } })),
      el("td", {}, el("a", { href: `#/run/${encodeURIComponent(r.id)}`, testid: "run-link" }, r.name || r.id),
        r.problems ? el("span", { class: "error", title: "problem lines in the log" }, ` ⚠ ${r.problems}`) : null),
      el("td", {}, r.trainer || ""),
      el("td", { class: `status-${r.status}`, testid: "run-status" }, r.status),
      el("td", {}, when(r.start)),
      el("td", {}, duration(r.duration)),
      el("td", {}, (r.tags || []).map((t) => el("span", { class: "tag" }, t))),
      el("td", {}, r.group || ""),
      shown.flatMap((k) => [el("td", { class: "num" }, fmt(r.metrics[k]?.last)), el("td", { class: "num" }, fmt(r.metrics[k]?.best))]),
    )));
    table.replaceChildren(el("thead", {}, head), body);
    compare.disabled = selected.size < 2;
    sweepBox.replaceChildren(...(sweeps.length ? [el("h3", {}, "Sweeps"), el("table", { testid: "sweeps-table" },
      el("thead", {}, el("tr", {}, ["sweep", "method", "metric", "goal", "trials", "ended", "best"].map((h) => el("th", {}, h)))),
      el("tbody", {}, sweeps.map((s) => el("tr", { testid: "sweep-row" },
        el("td", {}, el("a", { href: `#/sweep/${encodeURIComponent(s.id)}` }, s.sweep_id)),
        el("td", {}, s.method || ""), el("td", {}, s.metric || ""), el("td", {}, s.goal || ""),
        el("td", { class: "num" }, s.trials), el("td", { class: "num" }, s.finished), el("td", { class: "num" }, fmt(s.best))))))] : []));
  }

  draw();
  const live = stream("/api/runs/events", (message) => {
    let changed = false;
    for (const r of message.runs) { rows.set(r.id, r); changed = true; }
    if (JSON.stringify(message.sweeps) !== JSON.stringify(sweeps)) { sweeps = message.sweeps; changed = true; }
    if (!shown.length) shown = metricKeys().slice(0, 3);
    if (changed) draw();
  });
  return () => live.close();
}
