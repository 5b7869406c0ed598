/* coachloop report: draws the charts as inline SVG from the JSON embedded in the page.
   No libraries, no network. When done, <body data-ready="1">; each chart carries a count of the
   marks it drew (data-series, data-markers, data-cells, data-bars, data-steps). */
(function () {
  "use strict";
  var SVGNS = "http://www.w3.org/2000/svg";
  var PALETTE = ["#2563eb", "#d97706", "#059669", "#db2777", "#7c3aed", "#0891b2", "#65a30d", "#dc2626", "#4b5563", "#9333ea", "#ca8a04", "#0d9488"];

  function el(name, attrs, parent) {
    var node = document.createElementNS(SVGNS, name);
    for (var k in attrs) { if (Object.prototype.hasOwnProperty.call(attrs, k)) node.setAttribute(k, String(attrs[k])); }
    if (parent) parent.appendChild(node);
    return node;
  }
  function h(tag, cls, text, parent) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (parent) parent.appendChild(node);
    return node;
  }
  function svgText(parent, x, y, text, attrs) {
    var t = el("text", Object.assign({ x: x, y: y, "font-size": 11, fill: "#5b6474" }, attrs || {}), parent);
    t.textContent = String(text);
    return t;
  }
  function title(node, text) { var t = el("title", {}, node); t.textContent = text; return node; }
  function pct(v) { return v === null || v === undefined ? "n/a" : Math.round(v * 1000) / 10 + "%"; }
  function fmt(v, unit) {
    if (v === null || v === undefined) return "n/a";
    if (typeof v === "number" && unit && unit.indexOf("share") >= 0) return unit === "change in share" ? (v >= 0 ? "+" : "") + Math.round(v * 1000) / 10 + " pts" : pct(v);
    if (typeof v === "number") return (Math.round(v * 100) / 100) + (unit && unit !== "count" ? " " + unit : "");
    return String(v);
  }
  function heatColor(rate) {
    // red (0) -> amber (0.5) -> green (1)
    var r, g, b;
    if (rate < 0.5) { var t = rate / 0.5; r = 214 + (232 - 214) * t; g = 69 + (180 - 69) * t; b = 69 + (58 - 69) * t; }
    else { var u = (rate - 0.5) / 0.5; r = 232 + (46 - 232) * u; g = 180 + (157 - 180) * u; b = 58 + (91 - 58) * u; }
    return "rgb(" + Math.round(r) + "," + Math.round(g) + "," + Math.round(b) + ")";
  }

  var data = JSON.parse(document.getElementById("report-data").textContent);

  function drawKpis() {
    var box = document.getElementById("kpis");
    data.kpis.forEach(function (k) {
      var card = h("div", "kpi", null, box);
      card.title = k.method;
      h("div", "v", fmt(k.value, k.unit), card);
      h("div", "t", k.title, card);
    });
  }

  function drawFunnel() {
    var box = document.getElementById("funnel");
    document.getElementById("funnel-method").textContent = data.funnel_method;
    var steps = data.funnel;
    var max = Math.max.apply(null, steps.map(function (s) { return s.count; }).concat([1]));
    var W = 760, rowH = 30, left = 190;
    var svg = el("svg", { width: W, height: steps.length * rowH + 10, viewBox: "0 0 " + W + " " + (steps.length * rowH + 10), role: "img", "aria-label": "funnel" }, box);
    var labels = { calls_scored: "Calls scored", gaps_opened: "Gaps opened", practice_sessions: "Practice sessions", practice_passed: "Practice passed", certifications_passed: "Certifications passed", gaps_closed: "Gaps closed" };
    steps.forEach(function (s, i) {
      var w = Math.max(2, (W - left - 70) * s.count / max);
      var y = 5 + i * rowH;
      svgText(svg, left - 8, y + 19, labels[s.step] || s.step, { "text-anchor": "end", "font-size": 12.5, fill: "#1d2330" });
      title(el("rect", { x: left, y: y + 4, width: w, height: rowH - 8, rx: 3, fill: PALETTE[i % PALETTE.length], "class": "funnel-bar", "data-count": s.count }, svg), (labels[s.step] || s.step) + ": " + s.count);
      svgText(svg, left + w + 6, y + 19, s.count, { "font-size": 12.5, fill: "#1d2330" });
    });
    box.setAttribute("data-steps", String(steps.length));
    box.setAttribute("data-total", String(steps.reduce(function (a, s) { return a + s.count; }, 0)));
  }

  function drawHeatmap() {
    var box = document.getElementById("heatmap");
    var hm = data.heatmap;
    if (!hm.reps.length || !hm.lines.length) { h("p", "empty", "No scored live calls in this period.", box); return; }
    var cell = 46, left = 170, top = 120;
    var W = left + hm.lines.length * cell + 110, H = top + hm.reps.length * (cell - 14) + 10;
    var svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "adherence heatmap" }, box);
    var byKey = {};
    hm.cells.forEach(function (c) { byKey[c.rep + "|" + c.line] = c; });
    hm.lines.forEach(function (ln, j) {
      var x = left + j * cell + cell / 2;
      title(svgText(svg, x, top - 8, ln.title.length > 22 ? ln.title.slice(0, 21) + "\u2026" : ln.title, { transform: "rotate(-40 " + x + " " + (top - 8) + ")", "font-size": 11.5, fill: "#1d2330" }), ln.line);
    });
    var drawn = 0;
    hm.reps.forEach(function (r, i) {
      var y = top + i * (cell - 14);
      svgText(svg, left - 8, y + (cell - 14) / 2 + 4, r.name, { "text-anchor": "end", "font-size": 12, fill: "#1d2330" });
      hm.lines.forEach(function (ln, j) {
        var c = byKey[r.rep + "|" + ln.line];
        var x = left + j * cell;
        if (!c) { el("rect", { x: x + 1, y: y + 1, width: cell - 2, height: cell - 16, fill: "#f1f3f7" }, svg); return; }
        title(el("rect", { x: x + 1, y: y + 1, width: cell - 2, height: cell - 16, fill: heatColor(c.rate), "class": "heat-cell", "data-rate": c.rate }, svg),
          r.name + " \u00b7 " + ln.title + ": " + pct(c.rate) + " of " + c.n + " calls");
        svgText(svg, x + cell / 2, y + (cell - 14) / 2 + 4, Math.round(c.rate * 100), { "text-anchor": "middle", fill: "#fff", "font-size": 11.5, "font-weight": 600 });
        drawn += 1;
      });
    });
    box.setAttribute("data-cells", String(drawn));
    var tags = document.getElementById("tags");
    (data.adherence_methodologies || []).forEach(function (f) {
      var chip = h("span", "tag", f.methodology + ": " + pct(f.adherence) + " (" + f.pass + "/" + f.applicable + ")", tags);
      chip.title = (data.adherence_tags || []).filter(function (t) { return t.tag.split(" (")[0] === f.methodology; })
        .map(function (t) { return t.tag + ": " + pct(t.adherence); }).join("\n");
    });
  }

  function drawBeforeAfter() {
    var box = document.getElementById("before-after");
    document.getElementById("closure-method").textContent = data.closure_method;
    var gaps = data.before_after;
    if (!gaps.length) { h("p", "empty", "No gap has been closed after practice in this period yet.", box); return; }
    var groupW = 120, left = 46, top = 16, plotH = 170, W = Math.max(340, left + gaps.length * groupW + 20), H = top + plotH + 60;
    var svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "before and after" }, box);
    [0, 0.25, 0.5, 0.75, 1].forEach(function (v) {
      var y = top + plotH * (1 - v);
      el("line", { x1: left, x2: W - 10, y1: y, y2: y, stroke: "#e5e8ef" }, svg);
      svgText(svg, left - 6, y + 4, Math.round(v * 100) + "%", { "text-anchor": "end" });
    });
    var bars = 0;
    gaps.forEach(function (g, i) {
      var x0 = left + i * groupW + 18;
      [["before", "#9aa3b2"], ["after", "#2e9d5b"]].forEach(function (side, k) {
        var s = g[side[0]];
        if (s.rate === null || s.rate === undefined) return;
        var bh = Math.max(1, plotH * s.rate);
        title(el("rect", { x: x0 + k * 40, y: top + plotH - bh, width: 34, height: bh, fill: side[1], "class": "ba-bar", "data-side": side[0], "data-rate": s.rate }, svg),
          g.name + " \u00b7 " + g.title + " " + side[0] + ": " + pct(s.rate) + " (" + s.pass + "/" + s.applicable + " calls)");
        svgText(svg, x0 + k * 40 + 17, top + plotH - bh - 4, pct(s.rate), { "text-anchor": "middle", fill: "#1d2330" });
        bars += 1;
      });
      svgText(svg, x0 + 37, top + plotH + 16, g.name, { "text-anchor": "middle", fill: "#1d2330" });
      svgText(svg, x0 + 37, top + plotH + 30, g.title.length > 18 ? g.title.slice(0, 17) + "\u2026" : g.title, { "text-anchor": "middle" });
    });
    svgText(svg, left, H - 8, "grey: before practice \u00b7 green: after", {});
    box.setAttribute("data-bars", String(bars));
  }

  function drawReps() {
    var box = document.getElementById("rep-charts");
    var weeks = data.weeks;
    if (!data.reps.length || !weeks.length) { h("p", "empty", "No scored live calls in this period.", box); return; }
    var idx = {};
    weeks.forEach(function (w, i) { idx[w] = i; });
    var colors = {};
    data.heatmap.lines.forEach(function (ln, i) { colors[ln.line] = PALETTE[i % PALETTE.length]; });
    var series = 0, marks = 0;
    data.reps.forEach(function (rep) {
      var card = h("div", "rep", null, box);
      card.setAttribute("data-rep", rep.rep);
      h("h3", null, rep.name + (rep.team ? " \u00b7 " + rep.team : ""), card);
      var W = 360, H = 190, left = 34, right = 14, top = 18, bottom = 22;
      var pw = W - left - right, ph = H - top - bottom;
      var svg = el("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H, role: "img", "aria-label": "pass rates for " + rep.name }, card);
      function X(w) { return left + (weeks.length === 1 ? pw / 2 : pw * idx[w] / (weeks.length - 1)); }
      function Y(v) { return top + ph * (1 - v); }
      [0, 0.5, 1].forEach(function (v) {
        el("line", { x1: left, x2: W - right, y1: Y(v), y2: Y(v), stroke: "#eceff4" }, svg);
        svgText(svg, left - 4, Y(v) + 4, Math.round(v * 100) + "%", { "text-anchor": "end", "font-size": 10 });
      });
      svgText(svg, left, H - 6, weeks[0], { "font-size": 10 });
      if (weeks.length > 1) svgText(svg, W - right, H - 6, weeks[weeks.length - 1], { "font-size": 10, "text-anchor": "end" });
      rep.lines.forEach(function (ln) {
        var color = colors[ln.line] || "#4b5563";
        var pts = ln.points.filter(function (p) { return idx[p.week] !== undefined; });
        if (!pts.length) return;
        el("polyline", { points: pts.map(function (p) { return X(p.week).toFixed(1) + "," + Y(p.rate).toFixed(1); }).join(" "), fill: "none", stroke: color, "stroke-width": 1.8, "class": "rate-line", "data-line": ln.line, "data-points": pts.length }, svg);
        pts.forEach(function (p) {
          title(el("circle", { cx: X(p.week), cy: Y(p.rate), r: 2.4, fill: color }, svg), ln.title + ", week of " + p.week + ": " + pct(p.rate) + " of " + p.n + " calls");
        });
        series += 1;
      });
      rep.markers.forEach(function (m) {
        if (idx[m.week] === undefined) return;
        var x = X(m.week), g;
        var label = (m.kind === "gap" ? "gap opened" : m.kind === "certified" ? "certified" : "gap closed") + (m.line ? " on " + m.line : "") + " at " + m.at;
        if (m.kind === "gap") g = el("path", { d: "M" + x + "," + (top - 12) + " l5,9 l-10,0 z", fill: "#d64545" }, svg);
        else if (m.kind === "certified") g = el("circle", { cx: x, cy: top - 7, r: 4.5, fill: "#2e9d5b" }, svg);
        else g = el("path", { d: "M" + x + "," + (top - 13) + " l5,6 l-5,6 l-5,-6 z", fill: "#2b6cb0" }, svg);
        g.setAttribute("class", "marker marker-" + m.kind);
        title(g, label);
        el("line", { x1: x, x2: x, y1: top, y2: top + ph, stroke: m.kind === "gap" ? "#f3b1b1" : "#b6e0c6", "stroke-dasharray": "3,3" }, svg);
        marks += 1;
      });
      var legend = h("div", "legend", null, card);
      rep.lines.forEach(function (ln) {
        var item = h("span", null, null, legend);
        var sw = h("i", null, null, item);
        sw.style.background = colors[ln.line] || "#4b5563";
        item.appendChild(document.createTextNode(ln.title));
      });
    });
    box.setAttribute("data-series", String(series));
    box.setAttribute("data-markers", String(marks));
  }

  var failures = [];
  [drawKpis, drawFunnel, drawHeatmap, drawBeforeAfter, drawReps].forEach(function (fn) {
    try { fn(); } catch (e) { failures.push(fn.name + ": " + e.message); console.error("coachloop report: " + fn.name + " failed: " + e.message); }
  });
  document.body.setAttribute("data-ready", failures.length ? "error" : "1");
  if (failures.length) document.body.setAttribute("data-errors", failures.join("; "));
})();
