"""Score answers and assemble `results.json` and the lines of `samples.jsonl`.

Pure: the same answers give the same results whether they arrived in this run, a run
that was killed halfway, or come from the cache alone (`--rescore`), and whether each was
scored as it arrived (`score_answer`, called by the runner) or all at the end.
"""

from __future__ import annotations

import json
import math
import os
import statistics
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evalfleet.contract import SAMPLE_GROUP_FIELDS
from evalfleet.contract.files import write_private, write_problem
from evalfleet.contract.spec import JobSpec, ParamsSpec
from evalfleet.engine.interceptors import Interceptors
from evalfleet.exceptions import EngineError
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


@dataclass(slots=True)
class Scored:
    """One answered request, scored, with its samples.jsonl line already encoded."""

    score: Score
    unfinished: bool  # the response opened a reasoning block and never closed it
    line: str


_ENCODE_LINE = json.JSONEncoder(ensure_ascii=False).encode


def scores_cheaply(task: Task) -> bool:
    """Whether `score_answer` may run on the event loop while answers still arrive: not for
    tasks that wait on subprocesses (scored in threads at the end), log-likelihood tasks
    (scored per sample, once all its pairs are in) nor judged ones (scored with the judge's
    reply, which comes after)."""
    return (
        not is_loglikelihood(task)
        and not getattr(task, "scores_in_subprocesses", False)
        and not callable(getattr(task, "judge_request", None))
    )


def score_answer(
    task: Task, interceptors: Interceptors, sample: Sample, repeat: int, answer: dict[str, Any]
) -> Scored:
    text, reasoning, unfinished = interceptors.apply_response(
        answer["text"], answer.get("reasoning")
    )
    if is_loglikelihood(task):
        score = _score_loglikelihoods(task, sample, answer)
    elif "judge" in answer:  # a judged task's answer, with the judge's reply (engine.judge)
        score = task.score(sample, text, answer["judge"])  # type: ignore[call-arg]
    else:
        score = task.score(sample, text)
    return _scored(sample, repeat, answer, text, reasoning, unfinished, score)


def _scored(
    sample: Sample,
    repeat: int,
    answer: dict[str, Any],
    text: str,
    reasoning: str | None,
    unfinished: bool,
    score: Score,
) -> Scored:
    record: dict[str, Any] = {
        "id": sample.id,
        "repeat": repeat,
        "prompt": sample.shown_prompt(),
        "response": text,
        "extracted": score.extracted,
        "score": score.value,
        "error": None,
        "target": sample.target,
        "finish_reason": answer.get("finish_reason"),
    }
    # What the report charts and filters by: this answer's time and tokens, its group.
    if answer.get("latency_s") is not None:
        record["latency_s"] = answer["latency_s"]
    if answer.get("usage"):
        record["usage"] = answer["usage"]
    groups = {
        name: sample.metadata[name]
        for name in SAMPLE_GROUP_FIELDS
        if isinstance(sample.metadata.get(name), (str, int))
    }
    if groups:
        record["metadata"] = groups
    if reasoning:
        record["reasoning"] = reasoning
    if "judge" in answer:
        record["judge"] = answer["judge"]
    if score.metrics:
        record["metrics"] = score.metrics
    if "loglikelihoods" in answer:
        record["loglikelihoods"] = answer["loglikelihoods"]
    return Scored(score, unfinished, _ENCODE_LINE(record))


def write_results(path: Path, results: dict[str, Any]) -> None:
    """results.json, written whole or not at all (see `write_output`)."""
    write_output(path, json.dumps(results, indent=2) + "\n")


def write_output(path: Path, content: str | Iterable[str]) -> None:
    """One of a job's output files (results.json, samples.jsonl), private, whole or not at
    all. A failure (a full disk) is one line naming the file, its temporary file removed;
    every answer is in the response cache by then, so running the job again finishes it
    without sending them."""
    try:
        write_private(path, content)
    except OSError as exc:
        raise EngineError(
            f"{write_problem(path, exc)}; the answers are kept in the response cache: run the "
            "job again to finish it"
        ) from None


def results_header(job: JobSpec) -> dict[str, Any]:
    """What every results.json starts with, built-in task or framework package."""
    return {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "invocation_id": job.invocation_id,
        "job_id": job.job_id,
        "task": job.task,
        "model_id": job.endpoint.model_id,
        "endpoint_type": job.endpoint.type,
        "output_dir": job.output_dir,
    }


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
    scored: dict[str, Scored] | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """results.json's content and samples.jsonl's lines. `scored` holds answers already
    scored (by `score_answer`, as they arrived); the others are scored here."""
    per_sample: dict[str, list[float]] = {}
    secondary: dict[str, dict[str, list[float]]] = {}  # metric -> sample id -> values
    per_repeat: dict[int, list[float]] = {}
    samples: dict[str, Sample] = {}
    usage: Counter[str] = Counter()
    latencies: list[float] = []
    truncated = unfinished = errors = 0
    error_reasons: Counter[str] = Counter()
    lines: list[str] = []
    scored = {**(scored or {})}
    scored.update(
        _score_all(
            task,
            [item for item in items if item[2] in answers and item[2] not in scored],
            answers,
            interceptors,
        )
    )
    # One pass over every response (15,000 in a large task): the expensive part of each,
    # scoring and encoding its line, is done above or while the answers arrived.
    for sample, repeat, key in items:
        sample_id = sample.id
        samples[sample_id] = sample
        answer = answers.get(key)
        if answer is None:
            reason = failures.get(key, "no answer")
            error_reasons[reason.split(":")[0]] += 1
            errors += 1
            record = {
                "id": sample_id,
                "repeat": repeat,
                "prompt": sample.shown_prompt(),
                "response": None,
                "extracted": None,
                "score": None,
                "error": reason,
                "target": sample.target,
            }
            lines.append(_ENCODE_LINE(record))
            continue
        entry = scored[key]
        lines.append(entry.line)
        unfinished += entry.unfinished
        truncated += answer.get("finish_reason") == "length"
        for name, count in (answer.get("usage") or {}).items():
            if isinstance(count, int):
                usage[name] += count
        latency = answer.get("latency_s")
        if latency is not None:
            latencies.append(latency)
        score = entry.score
        per_sample.setdefault(sample_id, []).append(score.value)
        per_repeat.setdefault(repeat, []).append(score.value)
        for name, metric_value in score.metrics.items():
            secondary.setdefault(name, {}).setdefault(sample_id, []).append(metric_value)
    scored_samples = [(samples[sid], _mean(values)) for sid, values in per_sample.items()]
    metrics = (
        {name: metric.as_dict() for name, metric in task.aggregate(scored_samples).items()}
        if scored_samples
        else {}
    )
    for name, by_sample in secondary.items():
        if name not in metrics:
            values = [_mean(v) for v in by_sample.values()]
            metrics[name] = summarize(values).as_dict()
    results: dict[str, Any] = {
        **results_header(job),
        "headline_metric": task.headline_metric,
        "metrics": metrics,
        "counts": {
            "samples": len(samples),
            "responses": len(items),
            "scored": len(items) - errors,
            "scored_samples": len(scored_samples),
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
    return results, lines


def _score_all(
    task: Task,
    items: list[tuple[Sample, int, str]],
    answers: dict[str, dict[str, Any]],
    interceptors: Interceptors,
) -> dict[str, Scored]:
    """Every item (all answered) scored; tasks that run code score in parallel threads
    (each waits on its own sandbox process)."""
    if (
        not getattr(task, "scores_in_subprocesses", False)
        or len(items) < 2
        or callable(getattr(task, "judge_request", None))
    ):
        return {
            key: score_answer(task, interceptors, sample, repeat, answers[key])
            for sample, repeat, key in items
        }
    responses = [
        interceptors.apply_response(answers[key]["text"], answers[key].get("reasoning"))
        for _, _, key in items
    ]
    with ThreadPoolExecutor(max_workers=max(2, (os.cpu_count() or 1) * 2)) as pool:
        scores = list(pool.map(task.score, [item[0] for item in items], [r[0] for r in responses]))
    return {
        key: _scored(sample, repeat, answers[key], text, reasoning, unfinished, score)
        for (sample, repeat, key), (text, reasoning, unfinished), score in zip(
            items, responses, scores, strict=True
        )
    }


def _score_loglikelihoods(task: Any, sample: Sample, answer: dict[str, Any]) -> Score:
    results = [
        Loglikelihood(logprob=entry["logprob"], is_greedy=entry["is_greedy"], chars=entry["chars"])
        for entry in answer["loglikelihoods"]
    ]
    return task.score_loglikelihoods(sample, results)


def _versions() -> dict[str, str]:
    import platform
    import sys

    from evalfleet import __version__

    versions = {"evalfleet": __version__, "python": platform.python_version()}
    # aiohttp's version only when it carried the requests (behind a proxy): finding it
    # otherwise means importing it or importlib.metadata, ~60-150 ms at the end of a run.
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        versions["aiohttp"] = aiohttp.__version__
    return versions
