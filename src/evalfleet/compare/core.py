"""`evalfleet compare`: two or more runs, sample by sample.

runs[0] is the baseline, every later run a candidate. For each task both ran and each
metric with per-sample values (the headline, from each sample's `score`, and the extra
per-sample metrics a score carries, `metrics` in samples.jsonl), the samples both scored
are matched by id (a sample's repeats averaged, as the engine does), and:

- baseline/candidate value: the metric's mean over the shared samples (equal to
  results.json's value when every sample is shared); difference = candidate - baseline;
- ci95: paired bootstrap interval of the mean difference (`stats.paired_bootstrap_ci95`);
- p_value: McNemar's test when every value is right/wrong (0 or 1), else the paired
  permutation (sign-flip) test;
- significant: p < 0.05 AND the interval excludes 0 (`stats.significant`);
- flips: for a right/wrong headline, the samples right in one run and wrong in the other
  (`candidate`: the candidate's invocation id; `baseline`/`candidate_answer`: response,
  extracted answer and score in each run).

A sample that errored in either run is not shared (it has no value to pair). Metrics
that only exist as aggregates in results.json (per-category groups, pass@k for k > 1) have
no per-sample values to pair and are listed among `skipped`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from evalfleet.compare import stats
from evalfleet.compare._load import Run, TaskRun
from evalfleet.exceptions import UsageError

# Generation parameters that change what the model answers (parallelism, timeouts and
# retries do not; limit_samples only changes which samples are shared).
_ANSWER_PARAMS = ("temperature", "top_p", "max_new_tokens", "n_samples", "seed", "stop",
                  "extra_body", "judge")  # fmt: skip
_MAX_SHOWN = 60


def task_settings(spec: dict[str, Any]) -> dict[str, Any]:
    """The settings of a job (its job.json) that change the answers or their scores."""
    from evalfleet.config.redact import redact

    params = spec.get("params") or {}
    settings: dict[str, Any] = {f"params.{key}": params.get(key) for key in _ANSWER_PARAMS}
    settings["endpoint.type"] = (spec.get("endpoint") or {}).get("type")
    for key, value in (spec.get("interceptors") or {}).items():
        if key != "log_samples":  # logging only
            settings[f"interceptors.{key}"] = value
    for key, value in (spec.get("task_options") or {}).items():  # few-shot, templates…
        settings[f"task_options.{key}"] = value
    settings["scorer"] = spec.get("scorer")
    harness = spec.get("harness") or {}
    for key in ("package", "version", "task"):
        settings[f"harness.{key}"] = harness.get(key)
    settings["harness.config"] = (harness.get("run_config") or {}).get("config")
    return redact({key: value for key, value in settings.items() if value not in (None, {}, [])})


def setting_differences(runs: Sequence[Run]) -> list[str]:
    """One line per shared task and candidate whose settings differ from the baseline's,
    naming each differing setting and both values."""
    baseline, lines = runs[0], []
    for candidate in runs[1:]:
        for task in _shared(baseline, candidate):
            base = task_settings(baseline.tasks[task].job_spec)
            cand = task_settings(candidate.tasks[task].job_spec)
            keys = sorted(
                key for key in base.keys() | cand.keys() if base.get(key) != cand.get(key)
            )
            if keys:
                shown = ", ".join(
                    f"{key} {_shown(base.get(key))} vs {_shown(cand.get(key))}" for key in keys
                )
                lines.append(f"{task} ({candidate.invocation_id}): {shown}")
    return lines


def sample_differences(runs: Sequence[Run]) -> list[str]:
    """Shared tasks whose samples with the same id were asked differently (prompt: a
    template or few-shot change the settings do not show) or graded against another gold
    answer (another dataset)."""
    baseline, lines = runs[0], []
    for candidate in runs[1:]:
        for task in _shared(baseline, candidate):
            try:
                base = _first_by_id(baseline.tasks[task].samples())
                cand = _first_by_id(candidate.tasks[task].samples())
            except UsageError:
                continue  # no samples.jsonl: the task is skipped with that reason
            shared = base.keys() & cand.keys()
            for field, what in (("prompt", "prompt"), ("target", "gold answer")):
                differ = sum(1 for i in shared if base[i].get(field) != cand[i].get(field))
                if differ:
                    lines.append(
                        f"{task} ({candidate.invocation_id}): {what} differs for {differ} of "
                        f"{len(shared)} shared samples"
                    )
    return lines


def check_comparable(runs: Sequence[Run], force: bool) -> list[str]:
    """Raise UsageError (one line) when the runs' task settings differ, unless `force`;
    returns the differences (for a warning when forced)."""
    if len(runs) < 2:
        raise UsageError("compare needs at least two invocations: a baseline and a candidate")
    differences = setting_differences(runs) + sample_differences(runs)
    if differences and not force:
        raise UsageError(
            "the runs' task settings differ, so their scores are not comparable: "
            + "; ".join(differences)
            + " (--force compares them anyway)"
        )
    return differences


def compare(runs: Sequence[Run]) -> dict[str, Any]:
    """The comparison dict (see the module docstring): runs, rows, flips, skipped."""
    baseline = runs[0]
    labels = _labels(runs)
    comparison: dict[str, Any] = {
        "kind": "compare",
        "runs": [
            {"invocation_id": run.invocation_id, "model": run.model, "label": label}
            for run, label in zip(runs, labels, strict=True)
        ],
        "rows": [],
        "flips": [],
        "skipped": _unshared(runs),
    }
    for candidate in runs[1:]:
        for task in _shared(baseline, candidate):
            _compare_task(comparison, task, baseline.tasks[task], candidate.tasks[task], candidate)
    return comparison


def _compare_task(
    comparison: dict[str, Any], task: str, base_run: TaskRun, cand_run: TaskRun, cand: Run
) -> None:
    try:
        base_samples, cand_samples = base_run.samples(), cand_run.samples()
    except UsageError as exc:
        comparison["skipped"].append({"task": task, "reason": str(exc)})
        return
    headline = base_run.headline or cand_run.headline
    extra = (_extra_metrics(base_samples) & _extra_metrics(cand_samples)) - {headline}
    metrics = [headline, *sorted(extra)]
    for metric in metrics:
        base = _per_sample(base_samples, None if metric == headline else metric)
        cand_values = _per_sample(cand_samples, None if metric == headline else metric)
        shared = [i for i in base if i in cand_values]
        if not shared:
            comparison["skipped"].append(
                {"task": task, "reason": f"{metric}: no sample scored in both runs"}
            )
            continue
        row = _row(task, metric, cand.invocation_id, base, cand_values, shared)
        comparison["rows"].append(row)
        if metric == headline and row["kind"] == "binary":
            comparison["flips"] += _flips(
                task, cand.invocation_id, shared, base, cand_values, base_samples, cand_samples
            )
    in_both = set(base_run.results.get("metrics") or {}) & set(
        cand_run.results.get("metrics") or {}
    )
    unpaired = sorted(in_both - set(metrics))
    if unpaired:
        comparison["skipped"].append(
            {
                "task": task,
                "reason": "no per-sample values to pair (results.json only): "
                + ", ".join(unpaired),
            }
        )


def _row(
    task: str,
    metric: str,
    candidate: str,
    base: dict[str, float],
    cand: dict[str, float],
    shared: list[str],
) -> dict[str, Any]:
    base_values = [base[i] for i in shared]
    cand_values = [cand[i] for i in shared]
    differences = [c - b for b, c in zip(base_values, cand_values, strict=True)]
    n = len(shared)
    binary = all(v in (0.0, 1.0) for v in base_values) and all(v in (0.0, 1.0) for v in cand_values)
    right_to_wrong = wrong_to_right = 0
    if binary:
        right_to_wrong = sum(1 for d in differences if d < 0)
        wrong_to_right = sum(1 for d in differences if d > 0)
        p_value, test = stats.mcnemar_p(right_to_wrong, wrong_to_right), "mcnemar"
    else:
        p_value, test = stats.sign_flip_p(differences), "permutation"
    ci95 = stats.paired_bootstrap_ci95(differences)
    return {
        "task": task,
        "metric": metric,
        "kind": "binary" if binary else "continuous",
        "candidate": candidate,
        "baseline_value": math.fsum(base_values) / n,
        "candidate_value": math.fsum(cand_values) / n,
        "difference": math.fsum(differences) / n,
        "ci95": [ci95[0], ci95[1]],
        "p_value": p_value,
        "test": test,
        "significant": stats.significant(p_value, ci95),
        "n_shared": n,
        "right_to_wrong": right_to_wrong,
        "wrong_to_right": wrong_to_right,
    }


def _flips(
    task: str,
    candidate: str,
    shared: list[str],
    base: dict[str, float],
    cand: dict[str, float],
    base_samples: list[dict[str, Any]],
    cand_samples: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    base_first, cand_first = _first_scored(base_samples), _first_scored(cand_samples)
    flips = []
    for direction, lost in (("right_to_wrong", True), ("wrong_to_right", False)):
        for sample_id in shared:
            if base[sample_id] == cand[sample_id] or (base[sample_id] == 1.0) != lost:
                continue
            before, after = base_first[sample_id], cand_first[sample_id]
            flips.append(
                {
                    "task": task,
                    "candidate": candidate,
                    "sample_id": sample_id,
                    "direction": direction,
                    "prompt": before.get("prompt"),
                    "gold": before.get("target"),
                    "baseline": _answer(before),
                    # The brief's schema names both the invocation and the answer
                    # "candidate"; the answer goes under its own key (as the page reads it).
                    "candidate_answer": _answer(after),
                }
            )
    return flips


def _answer(record: dict[str, Any]) -> dict[str, Any]:
    return {key: record.get(key) for key in ("response", "extracted", "score")}


def _per_sample(samples: list[dict[str, Any]], metric: str | None) -> dict[str, float]:
    """Sample id -> the metric's value (the headline's `score` when `metric` is None),
    averaged over the sample's scored repeats; samples with no value are left out. Ids
    keep the file's order."""
    sums: dict[str, list[float]] = {}
    for record in samples:
        value = record.get("score") if metric is None else (record.get("metrics") or {}).get(metric)
        if isinstance(value, bool):
            value = float(value)
        if isinstance(value, (int, float)) and math.isfinite(value):
            sums.setdefault(str(record["id"]), []).append(float(value))
    return {key: math.fsum(values) / len(values) for key, values in sums.items()}


def _extra_metrics(samples: list[dict[str, Any]]) -> set[str]:
    return {name for record in samples for name in (record.get("metrics") or {})}


def _first_by_id(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    first: dict[str, dict[str, Any]] = {}
    for record in samples:
        first.setdefault(str(record["id"]), record)
    return first


def _first_scored(samples: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per id its first scored repeat (the one a right/wrong verdict comes from)."""
    first: dict[str, dict[str, Any]] = {}
    for record in samples:
        if record.get("score") is not None:
            first.setdefault(str(record["id"]), record)
    return first


def _shared(baseline: Run, candidate: Run) -> list[str]:
    return [task for task in baseline.tasks if task in candidate.tasks]


def _unshared(runs: Sequence[Run]) -> list[dict[str, str]]:
    """Tasks some run did not finish, each with where it is missing and why."""
    every: list[str] = []
    for run in runs:
        every += [t for t in [*run.tasks, *run.skipped] if t not in every]
    skipped = []
    for task in every:
        missing = [
            f"{run.invocation_id}: {run.skipped.get(task, 'not run')}"
            for run in runs
            if task not in run.tasks
        ]
        if missing:
            skipped.append(
                {"task": task, "reason": "not finished in every run (" + "; ".join(missing) + ")"}
            )
    return skipped


def _labels(runs: Sequence[Run]) -> list[str]:
    """The model's name, or model@invocation where two runs share a model."""
    models = [run.model for run in runs]
    return [
        run.model
        if models.count(run.model) == 1 and run.model
        else f"{run.model}@{run.invocation_id}"
        for run in runs
    ]


def _shown(value: Any) -> str:
    text = "unset" if value is None else json.dumps(value, sort_keys=True)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"
