// Draws an HTML report from its embedded data: headings, text, tables, and uPlot charts.
// Plain script (no modules, no fetch): the page is opened from disk, offline.
(function () {
  "use strict";

  var PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
  var INTEGER_STEPS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5,
    5e5, 1e6, 2e6, 5e6, 1e7];
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var root = document.getElementById("report");
  // The drawn uPlot instances by chart id, for a reader (or a test) to inspect.
  window.reportCharts = {};

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function slug(text) {
    return String(text).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
  }

  function isNumber(text) {
    return /^-?[\d,]+(\.\d+)?(e[+-]?\d+)?$|^n\/a$|^-?inf$/.test(text);
  }

  function table(item) {
    var node = el("table", { "data-testid": "table-" + slug(item.title) });
    node.appendChild(el("caption", {}, item.title));
    var head = el("tr");
    item.columns.forEach(function (name) { head.appendChild(el("th", {}, name)); });
    node.appendChild(el("thead")).appendChild(head);
    var body = node.appendChild(el("tbody"));
    item.rows.forEach(function (row) {
      var line = body.appendChild(el("tr"));
      row.forEach(function (cell) {
        line.appendChild(el("td", isNumber(cell) ? { class: "number" } : {}, cell));
      });
    });
    return node;
  }

  function smallestGap(x) {
    var gap = Infinity;
    for (var i = 1; i < x.length; i++) if (x[i] > x[i - 1]) gap = Math.min(gap, x[i] - x[i - 1]);
    return isFinite(gap) ? gap : 1;
  }

  function seriesOptions(s, index) {
    var color = s.color || PALETTE[index % PALETTE.length];
    var opts = { label: s.label, stroke: color, width: 1.5, spanGaps: true };
    if (s.kind === "bars") {
      // Several bar series overlap at full width: the histogram's never share a bin.
      opts.fill = color + "cc";
      opts.paths = uPlot.paths.bars({ size: [0.8, Infinity] });
      opts.points = { show: false };
    } else if (s.kind === "points") {
      opts.paths = function () { return null; };
      opts.points = { show: true, size: 4, stroke: color, fill: color };
    }
    return opts;
  }

  // Bars grow from 0: the y range always holds it.
  function barRange(u, min, max) {
    var low = Math.min(0, min);
    var high = Math.max(0, max);
    var pad = (high - low || 1) * 0.05;
    return [low < 0 ? low - pad : 0, high > 0 ? high + pad : 0];
  }

  function chart(item, width, parent) {
    var box = parent.appendChild(el("div", { class: "chart", "data-testid": "chart-" + item.id }));
    box.appendChild(el("div", { class: "chart-title" }, item.title));
    var bars = item.series.filter(function (s) { return s.kind === "bars"; });
    var x = item.x;
    var half = smallestGap(x) / 2;
    var xScale = { time: false };
    if (item.x_ticks) {
      var n = item.x_ticks.length;
      xScale.range = function () { return [-0.5, n - 0.5]; };
    } else if (bars.length && x.length) {
      xScale.range = function () { return [x[0] - half, x[x.length - 1] + half]; };
    }
    var xAxis = { label: item.x_label };
    if (x.every(Number.isInteger)) xAxis.incrs = INTEGER_STEPS; // steps, trades: no 0.5 ticks
    if (item.x_ticks) {
      xAxis.splits = function () { return item.x_ticks.map(function (_, i) { return i; }); };
      xAxis.values = function (u, splits) {
        return splits.map(function (v) { return item.x_ticks[Math.round(v)] || ""; });
      };
    }
    var opts = {
      width: width,
      height: 300,
      legend: { show: item.legend },
      scales: { x: xScale, y: bars.length ? { range: barRange } : {} },
      axes: [xAxis, { label: item.y_label, size: 70 }],
      series: [{ label: item.x_label || "x" }].concat(
        item.series.map(seriesOptions)
      ),
    };
    var columns = [x].concat(item.series.map(function (s) { return s.y; }));
    box.uplot = new uPlot(opts, columns, box);
    window.reportCharts[item.id] = box.uplot;
  }

  root.appendChild(el("h1", { "data-testid": "title" }, data.title));
  root.appendChild(el("p", { class: "source" }, data.source));
  var width = Math.max(600, Math.min(1050, root.clientWidth || 1050));
  data.sections.forEach(function (section) {
    var part = root.appendChild(el("section", { "data-testid": "section-" + slug(section.title) }));
    part.appendChild(el("h2", {}, section.title));
    if (section.text) part.appendChild(el("p", {}, section.text));
    section.items.forEach(function (item) {
      if (item.type === "table") part.appendChild(table(item));
      else chart(item, width, part);
    });
  });
  document.body.setAttribute("data-drawn", String(Object.keys(window.reportCharts).length));
})();
