"use strict";
// Helpers every evalfleet page shares. No library, no network: the page is one file.
var EF = (function () {
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    if (attrs) for (var key in attrs) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) continue;
      if (key === "text") node.textContent = value;
      else if (key === "cls") node.className = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined) return;
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }
  function isNum(v) { return typeof v === "number" && isFinite(v); }
  function fmt(v, digits) {
    if (!isNum(v)) return v === null || v === undefined ? "—" : String(v);
    return v.toFixed(digits === undefined ? 4 : digits);
  }
  function fmtCI(ci) { return Array.isArray(ci) && ci.length === 2 ? "[" + fmt(ci[0]) + ", " + fmt(ci[1]) + "]" : "—"; }
  function fmtSeconds(s) {
    if (!isNum(s)) return "—";
    if (s < 1) return (s * 1000).toFixed(s < 0.01 ? 2 : 0) + " ms";
    return s < 120 ? s.toFixed(2) + " s" : (s / 60).toFixed(1) + " min";
  }
  function fmtCount(n) { return isNum(n) ? n.toLocaleString("en-US") : "—"; }
  function snippet(text, max) {
    if (!text) return "";
    var cut = text.length > max ? text.slice(0, max) + "…" : text;
    return cut.replace(/\s+/g, " ");
  }
  function data() { return JSON.parse(document.getElementById("evalfleet-data").textContent); }

  // A histogram drawn as inline SVG from precomputed bins {min, width, counts, n, unit}.
  var SVG = "http://www.w3.org/2000/svg";
  function svg(tag, attrs) {
    var node = document.createElementNS(SVG, tag);
    for (var key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }
  function histogram(title, h, format) {
    var box = el("div", { cls: "chart", "data-chart": title });
    box.appendChild(el("div", { text: title }));
    if (!h) { box.appendChild(el("div", { cls: "empty", text: "no data" })); return box; }
    var W = 320, H = 130, pad = 16, top = 6, max = Math.max.apply(null, h.counts) || 1;
    var root = svg("svg", { width: W, height: H + pad + top, role: "img" });
    var bw = (W - 2) / h.counts.length;
    h.counts.forEach(function (count, i) {
      var bh = Math.round((count / max) * (H - 2));
      var rect = svg("rect", { "class": "bar", x: 1 + i * bw, y: top + H - bh, width: Math.max(1, bw - 1), height: bh });
      var lo = h.min + i * h.width, hi = lo + h.width;
      var t = svg("title", {}); t.textContent = format(lo) + " – " + format(hi) + ": " + count;
      rect.appendChild(t); root.appendChild(rect);
    });
    root.appendChild(svg("line", { x1: 0, x2: W, y1: top + H, y2: top + H, stroke: "#c6cbd3" }));
    var left = svg("text", { x: 1, y: top + H + 12 }); left.textContent = format(h.min); root.appendChild(left);
    var right = svg("text", { x: W - 1, y: top + H + 12, "text-anchor": "end" }); right.textContent = format(h.max); root.appendChild(right);
    box.appendChild(root);
    box.appendChild(el("div", { cls: "muted", text: fmtCount(h.n) + " answers · median " + format(h.p50) + " · p95 " + format(h.p95) }));
    return box;
  }

  // A list that keeps only the visible rows in the DOM, so 100,000 items scroll and
  // filter at once. renderRow(item, rowElement) fills a row; onOpen(item) on click.
  function VirtualList(container, rowHeight, renderRow, onOpen) {
    this.box = el("div", { cls: "vlist" });
    this.spacer = el("div", { cls: "spacer" });
    this.box.appendChild(this.spacer);
    container.appendChild(this.box);
    this.rowHeight = rowHeight; this.renderRow = renderRow; this.onOpen = onOpen;
    this.items = []; this.first = -1; this.last = -1; this.opened = null;
    var self = this, pending = false;
    this.box.addEventListener("scroll", function () {
      if (pending) return;
      pending = true;
      requestAnimationFrame(function () { pending = false; self.render(false); });
    });
  }
  VirtualList.prototype.setItems = function (items) {
    this.items = items;
    this.spacer.style.height = items.length * this.rowHeight + "px";
    this.box.style.height = Math.max(3, Math.min(15, items.length)) * this.rowHeight + 2 + "px";
    this.box.scrollTop = 0;
    this.render(true);
  };
  VirtualList.prototype.render = function (force) {
    var height = this.box.clientHeight || 15 * this.rowHeight;
    var first = Math.max(0, Math.floor(this.box.scrollTop / this.rowHeight) - 5);
    var last = Math.min(this.items.length, first + Math.ceil(height / this.rowHeight) + 10);
    if (!force && first === this.first && last === this.last) return;
    this.first = first; this.last = last;
    var old = this.box.querySelectorAll(".vrow");
    for (var k = 0; k < old.length; k++) old[k].remove();
    var self = this, frag = document.createDocumentFragment();
    for (var i = first; i < last; i++) {
      var item = this.items[i];
      var row = el("div", { cls: "vrow" + (item === this.opened ? " open" : ""), "data-pos": i });
      row.style.top = i * this.rowHeight + "px";
      this.renderRow(item, row);
      row.addEventListener("click", (function (it) {
        return function () { self.opened = it; self.render(true); self.onOpen(it); };
      })(item));
      frag.appendChild(row);
    }
    this.box.appendChild(frag);
  };

  function select(options, onChange, label) {
    var node = el("select", { "aria-label": label });
    options.forEach(function (o) { node.appendChild(el("option", { value: o[0], text: o[1] })); });
    node.addEventListener("change", onChange);
    return node;
  }
  function block(label, text, cls) {
    return [el("div", { cls: "label", text: label }), el("pre", { cls: cls || "", text: text === null || text === undefined || text === "" ? "—" : String(text) })];
  }
  function table(head, rows, attrs) {
    var t = el("table", attrs || {});
    var tr = el("tr");
    head.forEach(function (h) { tr.appendChild(el("th", { cls: h[1] || "", text: h[0] })); });
    t.appendChild(el("thead", {}, [tr]));
    var body = el("tbody");
    rows.forEach(function (r) { body.appendChild(r); });
    t.appendChild(body);
    return t;
  }
  return { el: el, fmt: fmt, fmtCI: fmtCI, fmtSeconds: fmtSeconds, fmtCount: fmtCount, snippet: snippet,
           data: data, histogram: histogram, VirtualList: VirtualList, select: select, block: block,
           table: table, isNum: isNum };
})();
