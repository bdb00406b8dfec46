"use strict";
// `evalfleet report`: a summary of every task, then per task its numbers, charts and a
// sample browser. Rows are arrays (see report/_data.py):
// [id, prompt, response, extracted, gold, score, error, finish_reason, group, reasoning]
(function () {
  var el = EF.el, fmt = EF.fmt;
  var D = EF.data();
  var app = document.getElementById("app");
  var VERDICTS = ["right", "wrong", "error", "unscored"];

  function verdictOf(row) {
    if (row[6]) return 2;
    if (!EF.isNum(row[5])) return 3;
    return row[5] >= 1 ? 0 : 1;  // below full marks counts as wrong
  }

  app.appendChild(el("h1", { text: "evalfleet report" }));
  D.invocations.forEach(function (inv) {
    app.appendChild(el("div", { cls: "muted" }, [
      el("span", { cls: "mono", text: inv.invocation_id }), " · model " + inv.model + " · " + inv.executor +
      " · " + new Date(inv.created_at * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC · " + inv.output_dir]));
  });
  app.appendChild(el("div", { cls: "muted", text: "generated " + D.generated_at }));

  // Summary of every task.
  var rows = D.tasks.map(function (t, i) {
    var m = t.metrics[t.headline] || {}, c = t.counts;
    return el("tr", { "data-task": i }, [
      el("td", { cls: "mono", text: t.invocation_id }),
      el("td", {}, [el("a", { href: "#task-" + i, text: t.task })]),
      el("td", { text: t.headline }),
      el("td", { cls: "num", "data-field": "value", text: fmt(m.value) }),
      el("td", { cls: "num", "data-field": "ci95", text: EF.fmtCI(m.ci95) }),
      el("td", { cls: "num", text: EF.fmtCount(m.n) }),
      el("td", { cls: "num", text: EF.fmtCount(c.scored) }),
      el("td", { cls: "num", text: EF.fmtCount(c.errors) }),
      el("td", { cls: "num", text: EF.fmtCount(c.truncated) }),
    ]);
  });
  app.appendChild(EF.table([["invocation"], ["task"], ["metric"], ["value", "num"], ["95% CI", "num"], ["n", "num"],
    ["scored", "num"], ["errors", "num"], ["truncated", "num"]], rows, { id: "summary" }));
  if (D.skipped.length) {
    app.appendChild(el("h3", { text: "Not shown" }));
    app.appendChild(el("ul", { id: "skipped" }, D.skipped.map(function (s) {
      return el("li", { text: s.invocation_id + " " + s.task + ": " + s.reason });
    })));
  }

  D.tasks.forEach(function (t, i) { app.appendChild(taskSection(t, i)); });
  window.__evalfleetReady = performance.now();

  function taskSection(t, index) {
    var sec = el("section", { cls: "task", id: "task-" + index, "data-task": t.task, "data-invocation": t.invocation_id });
    sec.appendChild(el("h2", {}, [t.task + " ", el("span", { cls: "muted mono", text: t.job_id + " · " + t.model })]));
    var m = t.metrics[t.headline] || {};
    sec.appendChild(el("div", { cls: "headline" }, [
      t.headline + " ", el("span", { cls: "value", "data-field": "value", "data-raw": String(m.value), text: fmt(m.value) }),
      el("span", { cls: "ci" }, [
        "95% CI ", el("span", { "data-field": "ci95", text: EF.fmtCI(m.ci95) }),
        m.ci95_from_stderr ? " (value ± 1.96 × stderr)" : "",
        " · stderr ", el("span", { "data-field": "stderr", text: fmt(m.stderr) }),
        " · n ", el("span", { "data-field": "n", text: EF.fmtCount(m.n) })]),
    ]));
    var names = Object.keys(t.metrics);
    if (names.length > 1) {
      sec.appendChild(EF.table([["metric"], ["value", "num"], ["95% CI", "num"], ["stderr", "num"], ["n", "num"]],
        names.map(function (name) {
          var x = t.metrics[name];
          return el("tr", { "data-metric": name }, [el("td", { text: name }), el("td", { cls: "num", text: fmt(x.value) }),
            el("td", { cls: "num", text: EF.fmtCI(x.ci95) }), el("td", { cls: "num", text: fmt(x.stderr) }),
            el("td", { cls: "num", text: EF.fmtCount(x.n) })]);
        }), { cls: "metrics" }));
    }
    var c = t.counts, facts = el("div", { cls: "facts counts" });
    [["scored", c.scored], ["errors", c.errors], ["truncated", c.truncated], ["reasoning unfinished", c.unfinished_reasoning],
     ["samples", c.samples], ["responses", c.responses]].forEach(function (f) {
      if (f[1] === undefined) return;
      facts.appendChild(el("span", { "data-count": f[0] }, [f[0] + " ", el("b", { text: EF.fmtCount(f[1]) })]));
    });
    facts.appendChild(el("span", {}, ["latency p50 ", el("b", { text: EF.fmtSeconds(t.latency_s.p50) }),
      " p95 ", el("b", { text: EF.fmtSeconds(t.latency_s.p95) })]));
    if (t.usage.completion_tokens !== undefined)
      facts.appendChild(el("span", {}, ["completion tokens ", el("b", { text: EF.fmtCount(t.usage.completion_tokens) })]));
    if (EF.isNum(t.wall_time_s)) facts.appendChild(el("span", {}, ["wall time ", el("b", { text: EF.fmtSeconds(t.wall_time_s) })]));
    sec.appendChild(facts);
    if (c.scored && c.truncated && c.truncated * 2 > c.scored)
      sec.appendChild(el("div", { cls: "warn", text: "Most answers were cut at max_new_tokens (finish_reason length): raise it to score them fairly." }));

    var charts = el("div", { cls: "charts" });
    charts.appendChild(EF.histogram("latency per answer", t.charts.latency, EF.fmtSeconds));
    charts.appendChild(EF.histogram("completion tokens per answer", t.charts.completion_tokens, function (v) { return Math.round(v).toString(); }));
    charts.appendChild(EF.histogram("prompt tokens per answer", t.charts.prompt_tokens, function (v) { return Math.round(v).toString(); }));
    sec.appendChild(charts);

    sec.appendChild(el("h3", { text: "Samples" }));
    if (!t.has_samples) {
      sec.appendChild(el("div", { cls: "empty no-samples", text: t.harness
        ? "This framework package's run left no samples.jsonl: only its metrics are shown."
        : "This task has no samples.jsonl: only its metrics are shown." }));
      return sec;
    }
    sec.appendChild(sampleBrowser(t));
    return sec;
  }

  function sampleBrowser(t) {
    var S = t.samples, n = S.length;
    var verdict = new Uint8Array(n), truncated = new Uint8Array(n), counts = [0, 0, 0, 0], nTrunc = 0;
    var groups = {};
    for (var i = 0; i < n; i++) {
      var v = verdictOf(S[i]); verdict[i] = v; counts[v]++;
      if (S[i][7] === "length") { truncated[i] = 1; nTrunc++; }
      if (S[i][8]) groups[S[i][8]] = (groups[S[i][8]] || 0) + 1;
    }
    var hay = null;  // lowercase search text per sample, built at the first search
    function haystack() {
      if (hay) return hay;
      hay = new Array(n);
      for (var j = 0; j < n; j++) {
        var r = S[j];
        hay[j] = (r[0] + "\n" + r[1] + "\n" + r[2] + "\n" + r[3] + "\n" + r[4] + "\n" + (r[6] || "")).toLowerCase();
      }
      return hay;
    }
    var box = el("div", { cls: "browser" });
    var search = el("input", { type: "search", placeholder: "Search prompt, response, answer, gold, id…", "aria-label": "search" });
    var filter = EF.select([["all", "all (" + n + ")"], ["right", "right (" + counts[0] + ")"], ["wrong", "wrong (" + counts[1] + ")"],
      ["error", "error (" + counts[2] + ")"], ["truncated", "truncated (" + nTrunc + ")"]].concat(
      counts[3] ? [["unscored", "unscored (" + counts[3] + ")"]] : []), update, "verdict filter");
    filter.className = "verdict-filter";
    var controls = el("div", { cls: "controls" }, [search, filter]);
    var groupSelect = null, groupNames = Object.keys(groups).sort();
    if (groupNames.length) {
      groupSelect = EF.select([["", "every " + t.group_field]].concat(groupNames.map(function (g) {
        return [g, g + " (" + groups[g] + ")"]; })), update, t.group_field + " filter");
      groupSelect.className = "group-filter";
      controls.appendChild(groupSelect);
    }
    var shown = el("span", { cls: "muted shown" });
    controls.appendChild(shown);
    box.appendChild(controls);
    box.appendChild(el("div", { cls: "vrow vhead" }, [el("span", { cls: "c-id", text: "id" }), el("span", { cls: "c-v", text: "verdict" }),
      el("span", { cls: "c-x", text: "extracted" }), el("span", { cls: "c-g", text: "gold" }), el("span", { cls: "c-r", text: "response (click a row for the full texts)" })]));
    var detail = el("div", { cls: "detail", hidden: true });
    var list = new EF.VirtualList(box, 28, function (i, row) {
      var r = S[i], v = VERDICTS[verdict[i]];
      row.setAttribute("data-index", i); row.setAttribute("data-verdict", v);
      row.appendChild(el("span", { cls: "c-id mono", text: r[0] }));
      row.appendChild(el("span", { cls: "c-v badge v-" + v, text: v + (truncated[i] ? " ✂" : "") }));
      row.appendChild(el("span", { cls: "c-x mono", title: "extracted", text: EF.snippet(r[3], 40) || "—" }));
      row.appendChild(el("span", { cls: "c-g mono", title: "gold", text: EF.snippet(r[4], 40) || "—" }));
      row.appendChild(el("span", { cls: "c-r", text: EF.snippet(r[6] || r[2], 200) }));
    }, function (i) { open(i); });
    box.appendChild(detail);
    search.addEventListener("input", update);

    function open(i) {
      var r = S[i];
      detail.hidden = false;
      detail.textContent = "";
      detail.appendChild(el("div", {}, [el("b", { text: "Sample " + r[0] }), " · verdict ",
        el("span", { cls: "badge v-" + VERDICTS[verdict[i]], text: VERDICTS[verdict[i]] }),
        " · score " + fmt(r[5]) + (r[7] ? " · finish_reason " + r[7] : "") + (r[8] ? " · " + t.group_field + " " + r[8] : "")]));
      EF.block("Prompt", r[1], "d-prompt").forEach(function (x) { detail.appendChild(x); });
      if (r[9]) EF.block("Reasoning", r[9], "d-reasoning").forEach(function (x) { detail.appendChild(x); });
      EF.block("Response", r[2], "d-response").forEach(function (x) { detail.appendChild(x); });
      EF.block("Extracted answer", r[3], "d-extracted").forEach(function (x) { detail.appendChild(x); });
      EF.block("Gold", r[4], "d-gold").forEach(function (x) { detail.appendChild(x); });
      if (r[6]) EF.block("Error", r[6], "d-error").forEach(function (x) { detail.appendChild(x); });
    }

    function update() {
      var want = filter.value, group = groupSelect ? groupSelect.value : "";
      var q = search.value.trim().toLowerCase(), h = q ? haystack() : null;
      var code = VERDICTS.indexOf(want), out = [];
      for (var i = 0; i < n; i++) {
        if (want === "truncated" ? !truncated[i] : (code >= 0 && verdict[i] !== code)) continue;
        if (group && S[i][8] !== group) continue;
        if (h && h[i].indexOf(q) < 0) continue;
        out.push(i);
      }
      shown.textContent = "showing " + out.length.toLocaleString("en-US") + " of " + n.toLocaleString("en-US") + " samples";
      shown.setAttribute("data-shown", out.length);
      list.setItems(out);
    }
    update();
    return box;
  }
})();
