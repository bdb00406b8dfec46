"use strict";
// `evalfleet compare --html`: the table of differences (significant rows marked) and a
// browser of the samples that flipped between the baseline and a candidate.
(function () {
  var el = EF.el, fmt = EF.fmt;
  var D = EF.data();
  var app = document.getElementById("app");
  var runs = D.runs || [], rows = D.rows || [], flips = D.flips || [], skipped = D.skipped || [];
  var byId = {};
  runs.forEach(function (r) { byId[r.invocation_id] = r; });
  function name(id) { var r = byId[id]; return r ? (r.label || r.model || id) : String(id); }
  function signed(v) { return EF.isNum(v) ? (v > 0 ? "+" : "") + fmt(v) : "—"; }
  function pValue(p) { return !EF.isNum(p) ? "—" : p < 0.0001 ? p.toExponential(2) : p.toFixed(4); }

  app.appendChild(el("h1", { text: "evalfleet compare" }));
  app.appendChild(el("ul", { id: "runs" }, runs.map(function (r, i) {
    return el("li", {}, [i === 0 ? "baseline: " : "candidate: ", el("span", { cls: "mono", text: r.invocation_id }),
      " · " + (r.model || "") + (r.label && r.label !== r.model ? " · " + r.label : "")]);
  })));

  var tableRows = rows.map(function (r, i) {
    return el("tr", { cls: r.significant ? "significant" : "", "data-row": i, "data-significant": r.significant ? "yes" : "no" }, [
      el("td", { text: r.task }), el("td", { text: r.metric }), el("td", { text: r.kind }),
      el("td", { title: r.candidate, text: name(r.candidate) }),
      el("td", { cls: "num", "data-field": "baseline_value", text: fmt(r.baseline_value) }),
      el("td", { cls: "num", "data-field": "candidate_value", text: fmt(r.candidate_value) }),
      el("td", { cls: "num", "data-field": "difference", text: signed(r.difference) }),
      el("td", { cls: "num", "data-field": "ci95", text: EF.fmtCI(r.ci95) }),
      el("td", { cls: "num", "data-field": "p_value", text: pValue(r.p_value) }),
      el("td", { text: r.test }),
      el("td", { cls: "num", "data-field": "n_shared", text: EF.fmtCount(r.n_shared) }),
      el("td", { cls: "num", "data-field": "right_to_wrong", text: EF.isNum(r.right_to_wrong) ? String(r.right_to_wrong) : "—" }),
      el("td", { cls: "num", "data-field": "wrong_to_right", text: EF.isNum(r.wrong_to_right) ? String(r.wrong_to_right) : "—" }),
      el("td", { cls: r.significant ? "sig" : "muted", "data-field": "significant", text: r.significant ? "★ significant" : "no" }),
    ]);
  });
  var sec = el("section", { cls: "block" }, [el("h2", { text: "Differences (candidate − baseline, paired over shared samples)" })]);
  sec.appendChild(rows.length ? EF.table([["task"], ["metric"], ["kind"], ["candidate"], ["baseline", "num"], ["candidate", "num"],
    ["difference", "num"], ["95% CI", "num"], ["p-value", "num"], ["test"], ["shared n", "num"], ["right→wrong", "num"],
    ["wrong→right", "num"], ["significant"]], tableRows, { id: "differences" }) : el("div", { cls: "empty", text: "No shared task to compare." }));
  sec.appendChild(el("div", { cls: "muted", text: "★: the 95% CI of the difference excludes 0 and p < 0.05." }));
  app.appendChild(sec);
  if (skipped.length) {
    app.appendChild(el("h3", { text: "Not compared" }));
    app.appendChild(el("ul", { id: "skipped" }, skipped.map(function (s) { return el("li", { text: s.task + ": " + s.reason }); })));
  }

  // Flip browser.
  var fsec = el("section", { cls: "block" }, [el("h2", { text: "Samples that flipped" })]);
  app.appendChild(fsec);
  var tasks = [], candidates = [];
  flips.forEach(function (f) {
    if (tasks.indexOf(f.task) < 0) tasks.push(f.task);
    if (candidates.indexOf(f.candidate) < 0) candidates.push(f.candidate);
  });
  var taskSel = EF.select([["", "every task"]].concat(tasks.map(function (t) { return [t, t]; })), update, "task filter");
  taskSel.className = "task-filter";
  var dirSel = EF.select([["", "both directions"], ["right_to_wrong", "right → wrong"], ["wrong_to_right", "wrong → right"]], update, "direction filter");
  dirSel.className = "direction-filter";
  var candSel = EF.select([["", "every candidate"]].concat(candidates.map(function (c) { return [c, name(c)]; })), update, "candidate filter");
  candSel.className = "candidate-filter";
  var shown = el("span", { cls: "muted shown" });
  fsec.appendChild(el("div", { cls: "controls" }, [taskSel, dirSel].concat(candidates.length > 1 ? [candSel] : []).concat([shown])));
  var detail = el("div", { cls: "detail", hidden: true });
  var list = new EF.VirtualList(fsec, 28, function (i, row) {
    var f = flips[i];
    row.setAttribute("data-index", i); row.setAttribute("data-direction", f.direction); row.setAttribute("data-task", f.task);
    row.appendChild(el("span", { cls: "c-id mono", text: f.sample_id }));
    row.appendChild(el("span", { cls: "c-v badge " + (f.direction === "right_to_wrong" ? "v-wrong" : "v-right"),
      text: f.direction === "right_to_wrong" ? "right→wrong" : "wrong→right" }));
    row.appendChild(el("span", { cls: "c-x", text: f.task }));
    row.appendChild(el("span", { cls: "c-g", text: name(f.candidate) }));
    row.appendChild(el("span", { cls: "c-r", text: EF.snippet(f.prompt, 200) }));
  }, open);
  fsec.appendChild(detail);
  if (!flips.length) fsec.appendChild(el("div", { cls: "empty", text: "No sample flipped." }));

  function side(title, s) {
    s = s || {};
    var box = el("div", {}, [el("h3", { text: title + " · score " + fmt(s.score) })]);
    EF.block("Response", s.response).concat(EF.block("Extracted answer", s.extracted)).forEach(function (x) { box.appendChild(x); });
    return box;
  }
  function open(i) {
    var f = flips[i];
    detail.hidden = false; detail.textContent = "";
    detail.appendChild(el("div", {}, [el("b", { text: f.task + " · sample " + f.sample_id }), " · " + f.direction.replace(/_/g, " ") + " · " + name(f.candidate)]));
    EF.block("Prompt", f.prompt).concat(EF.block("Gold", f.gold)).forEach(function (x) { detail.appendChild(x); });
    detail.appendChild(el("div", { cls: "side" }, [side("Baseline (" + name(runs.length ? runs[0].invocation_id : "") + ")", f.baseline),
      side("Candidate (" + name(f.candidate) + ")", f.candidate_answer)]));
  }
  function update() {
    var out = [];
    for (var i = 0; i < flips.length; i++) {
      var f = flips[i];
      if (taskSel.value && f.task !== taskSel.value) continue;
      if (dirSel.value && f.direction !== dirSel.value) continue;
      if (candSel.value && f.candidate !== candSel.value) continue;
      out.push(i);
    }
    shown.textContent = "showing " + out.length + " of " + flips.length + " flips";
    shown.setAttribute("data-shown", out.length);
    list.setItems(out);
  }
  update();
  window.__evalfleetReady = performance.now();
})();
