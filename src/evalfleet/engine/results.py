"""Score cached answers and assemble `results.json` and `samples.jsonl` records.

Pure: the same answers give the same results whether they arrived in this run, a run
that was killed halfway, or come from the cache alone (`--rescore`).
"""

from __future__ import annotations

import math
import os
import statistics
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from evalfleet.config.interceptors import Interceptors
from evalfleet.engine.jobspec import JobSpec, ParamsSpec
from evalfleet.scoring.stats import summarize
from evalfleet.tasks.base import Loglikelihood, Sample, Score, Task, is_loglikelihood

RESULTS_SCHEMA_VERSION = 1


def _mean(values: list[float]) -> float:
    """statistics.fmean's result (fsum / n) without its per-call overhead: it runs once
    per sample."""
    return math.fsum(values) / len(values)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def build_results(
    *,
    job: JobSpec,
    task: Task,
    params: ParamsSpec,
    items: list[tuple[Sample, int, str]],
    answers: dict[str, dict[str, Any]],
    failures: dict[str, str],
    interceptors: Interceptors,
    wall_time_s: float,
    client_stats: dict[str, int],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    records: list[dict[str, Any]] = []
    per_sample: dict[str, list[float]] = {}
    secondary: dict[str, dict[str, list[float]]] = {}  # metric -> sample id -> values
    per_repeat: dict[int, list[float]] = {}
    samples: dict[str, Sample] = {}
    usage: Counter[str] = Counter()
    latencies: list[float] = []
    truncated = unfinished = 0
    error_reasons: Counter[str] = Counter()
    responses = {  # key -> (answer text, reasoning, reasoning left open)
        key: interceptors.apply_response(answers[key]["text"], answers[key].get("reasoning"))
        for _, _, key in items
        if key in answers
    }
    scores = _score_all(task, items, answers, responses)
    # One pass over every response (15,000 in a large task): dict literals, no per-record
    # kwargs or update(), since this is most of the time between the last answer and the
    # results files.
    for sample, repeat, key in items:
        sample_id = sample.id
        samples[sample_id] = sample
        answer = answers.get(key)
        if answer is None:
            reason = failures.get(key, "no answer")
            error_reasons[reason.split(":")[0]] += 1
            records.append(
                {
                    "id": sample_id,
                    "repeat": repeat,
                    "prompt": sample.shown_prompt(),
                    "response": None,
                    "extracted": None,
                    "score": None,
                    "error": reason,
                    "target": sample.target,
                }
            )
            continue
        text, reasoning, open_reasoning = responses[key]
        unfinished += open_reasoning
        finish_reason = answer.get("finish_reason")
        truncated += finish_reason == "length"
        for name, count in (answer.get("usage") or {}).items():
            if isinstance(count, int):
                usage[name] += count
        latency = answer.get("latency_s")
        if latency is not None:
            latencies.append(latency)
        score = scores[key]
        value = score.value
        per_sample.setdefault(sample_id, []).append(value)
        per_repeat.setdefault(repeat, []).append(value)
        record = {
            "id": sample_id,
            "repeat": repeat,
            "prompt": sample.shown_prompt(),
            "response": text,
            "extracted": score.extracted,
            "score": value,
            "error": None,
            "target": sample.target,
            "finish_reason": finish_reason,
        }
        if reasoning:
            record["reasoning"] = reasoning
        if score.metrics:
            record["metrics"] = score.metrics
            for name, metric_value in score.metrics.items():
                secondary.setdefault(name, {}).setdefault(sample_id, []).append(metric_value)
        if "loglikelihoods" in answer:
            record["loglikelihoods"] = answer["loglikelihoods"]
        records.append(record)
    scored = [(samples[sid], _mean(values)) for sid, values in per_sample.items()]
    metrics = (
        {name: metric.as_dict() for name, metric in task.aggregate(scored).items()}
        if scored
        else {}
    )
    for name, by_sample in secondary.items():
        if name not in metrics:
            values = [_mean(v) for v in by_sample.values()]
            metrics[name] = summarize(values).as_dict()
    errors = sum(1 for r in records if r["error"] is not None)
    results: dict[str, Any] = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "invocation_id": job.invocation_id,
        "job_id": job.job_id,
        "task": job.task,
        "model_id": job.endpoint.model_id,
        "endpoint_type": job.endpoint.type,
        "output_dir": job.output_dir,
        "headline_metric": task.headline_metric,
        "metrics": metrics,
        "counts": {
            "samples": len(samples),
            "responses": len(items),
            "scored": len(items) - errors,
            "scored_samples": len(scored),
            "errors": errors,
            "truncated": truncated,
            "unfinished_reasoning": unfinished,
        },
        "errors_by_reason": dict(error_reasons.most_common(10)),
        "usage": dict(usage),
        "latency_s": {
            "p50": percentile(latencies, 0.5),
            "p95": percentile(latencies, 0.95),
        },
        "requests": client_stats,
        "wall_time_s": round(wall_time_s, 3),
        "params": params.model_dump(exclude_none=True),
        "versions": _versions(),
    }
    if params.n_samples > 1:
        means = [_mean(v) for _, v in sorted(per_repeat.items()) if v]
        results["repeats"] = {
            "n": params.n_samples,
            "per_repeat": means,
            "mean": _mean(means) if means else None,
            "spread": statistics.stdev(means) if len(means) > 1 else 0.0,
        }
    return results, records


def _score_all(
    task: Task,
    items: list[tuple[Sample, int, str]],
    answers: dict[str, dict[str, Any]],
    responses: dict[str, tuple[str, str | None, bool]],
) -> dict[str, Any]:
    """Scores of every answered item; tasks that run code score in parallel threads (each
    waits on its own sandbox process)."""
    if is_loglikelihood(task):
        return {
            key: _score_loglikelihoods(task, sample, answers[key])
            for sample, _, key in items
            if key in answers
        }
    work = [(key, sample, responses[key][0]) for sample, _, key in items if key in responses]
    if not getattr(task, "scores_in_subprocesses", False) or len(work) < 2:
        return {key: task.score(sample, text) for key, sample, text in work}
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 1) * 2)) as pool:
        scored = pool.map(lambda entry: task.score(entry[1], entry[2]), work)
        return {key: score for (key, _, _), score in zip(work, scored, strict=True)}


def _score_loglikelihoods(task: Any, sample: Sample, answer: dict[str, Any]) -> Score:
    results = [
        Loglikelihood(logprob=entry["logprob"], is_greedy=entry["is_greedy"], chars=entry["chars"])
        for entry in answer["loglikelihoods"]
    ]
    return task.score_loglikelihoods(sample, results)  # type: ignore[no-any-return]


def _versions() -> dict[str, str]:
    import platform
    from importlib.metadata import version

    from evalfleet import __version__

    return {
        "evalfleet": __version__,
        "python": platform.python_version(),
        "aiohttp": version("aiohttp"),  # read from its metadata: importing it costs ~150 ms
    }
