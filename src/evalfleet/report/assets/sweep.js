"use strict";
// `evalfleet compare --sweep --html`: one table, models down, tasks across, each cell the
// headline metric with its 95% CI and n.
(function () {
  var el = EF.el, fmt = EF.fmt;
  var D = EF.data();
  var app = document.getElementById("app");
  app.appendChild(el("h1", { text: "evalfleet sweep" }));
  (D.notes || (D.note ? [D.note] : [])).forEach(function (line) { app.appendChild(el("div", { cls: "muted note", text: line })); });
  var cells = {}, metrics = {};
  (D.cells || []).forEach(function (c) {
    cells[c.model + "\u0000" + c.task] = c;
    (metrics[c.task] = metrics[c.task] || {})[c.metric] = true;
  });
  var head = [["model"]].concat(D.tasks.map(function (t) { return [t + " (" + Object.keys(metrics[t] || {}).join(", ") + ")"]; }));
  var rows = D.models.map(function (m) {
    return el("tr", { "data-model": m }, [el("td", { text: m })].concat(D.tasks.map(function (t) {
      var c = cells[m + "\u0000" + t];
      if (!c) return el("td", { "data-task": t, cls: "muted", text: "—" });
      return el("td", { "data-task": t, title: c.metric + " · " + c.invocation_id }, [
        el("span", { "data-field": "value", text: fmt(c.value) }), " ",
        el("span", { cls: "muted", "data-field": "ci95", text: EF.fmtCI(c.ci95) }), " ",
        el("span", { cls: "muted", "data-field": "n", text: "n=" + EF.fmtCount(c.n) })]);
    })));
  });
  var sec = el("section", { cls: "block" }, [el("h2", { text: "Models × tasks (95% CI)" })]);
  sec.appendChild(EF.table(head, rows, { id: "sweep" }));
  app.appendChild(sec);
  window.__evalfleetReady = performance.now();
})();
