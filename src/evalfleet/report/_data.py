"""What a report shows of one task: results.json's numbers, its samples (built-in tasks'
scored records or a framework package's request log), and the latency and token
distributions of its answers.

Everything is read from the task's output dir; nothing here knows the store or a backend.
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path
from typing import Any, TypeGuard

from evalfleet.contract import SAMPLE_GROUP_FIELDS as GROUP_FIELDS

_HISTOGRAM_BINS = 24


def read_results(task_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """(results.json's content, "") or (None, why it cannot be shown)."""
    path = task_dir / "results.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"no results: {path} not found"
    except (OSError, ValueError) as exc:
        return None, f"{path} cannot be read: {exc}"
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        return None, f"{path}: expected a JSON object with metrics"
    return data, ""


def task_data(invocation_id: str, job_id: str, task: str, task_dir: Path,
              results: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """One task as the page's script reads it."""
    samples, group_field, per_answer = _read_samples(task_dir / "samples.jsonl")
    if not per_answer["latency"] and not per_answer["completion"]:
        per_answer = _cache_distributions(task_dir / "cache.sqlite")
    metrics = results.get("metrics") or {}
    headline = str(results.get("headline_metric") or next(iter(metrics), ""))
    return {
        "invocation_id": invocation_id,
        "job_id": job_id,
        "task": task,
        "model": str(results.get("model_id") or ""),
        "output_dir": str(task_dir),
        "headline": headline,
        "metrics": {name: _metric(value) for name, value in metrics.items()},
        "counts": results.get("counts") or {},
        "latency_s": results.get("latency_s") or {},
        "usage": results.get("usage") or {},
        "wall_time_s": results.get("wall_time_s"),
        "harness": bool(results.get("harness")),
        "has_samples": samples is not None,
        "group_field": group_field,
        "samples": samples or [],
        "charts": {
            "latency": histogram(per_answer["latency"], "s"),
            "completion_tokens": histogram(per_answer["completion"], "tokens"),
            "prompt_tokens": histogram(per_answer["prompt"], "tokens"),
        },
    }


def _metric(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {"value": value}
    out = {key: value.get(key) for key in ("value", "stderr", "ci95", "n")}
    ci, center, stderr = out["ci95"], out["value"], out["stderr"]
    if not (isinstance(ci, list) and len(ci) == 2) and _finite(center) and _finite(stderr):
        # A framework package reports a stderr only: the normal interval, said to be one.
        out["ci95"] = [float(center) - 1.96 * float(stderr), float(center) + 1.96 * float(stderr)]
        out["ci95_from_stderr"] = True
    return out


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# One sample row, as a list to keep a 100,000-sample page small:
# [id, prompt, response, extracted, gold, score, error, finish_reason, group, reasoning]
def _read_samples(
    path: Path,
) -> tuple[list[list[Any]] | None, str, dict[str, list[float]]]:
    per_answer: dict[str, list[float]] = {"latency": [], "completion": [], "prompt": []}
    try:
        handle = path.open(encoding="utf-8")
    except FileNotFoundError:
        return None, "", per_answer
    rows: list[list[Any]] = []
    group_field = ""
    with handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut by a crash: the rest is still worth showing
            if not isinstance(record, dict):
                continue
            if "request" in record and "kind" in record:
                row = _harness_row(record, len(rows))
            else:
                row = _sample_row(record)
            _answer_figures(record, per_answer)
            group = _group(record)
            if group is not None:
                group_field = group_field or group[0]
                row[8] = group[1]
            rows.append(row)
    return rows, group_field, per_answer


def _sample_row(record: dict[str, Any]) -> list[Any]:
    score = record.get("score")
    return [
        _text(record.get("id")),
        _text(record.get("prompt")),
        _text(record.get("response")),
        _text(record.get("extracted")),
        _text(record.get("target")),
        score if _finite(score) else None,
        _text(record.get("error")) or None,
        record.get("finish_reason") or "",
        "",
        _text(record.get("reasoning")),
    ]


def _harness_row(record: dict[str, Any], index: int) -> list[Any]:
    """A framework package's request log line: the request's last user message and the
    answer's text; the package scores them itself, so there is no verdict per line."""
    request = _dict(record.get("request"))
    response = _dict(record.get("response"))
    messages = request.get("messages")
    prompt = "\n".join(
        f"{m.get('role')}: {_text(m.get('content'))}"
        for m in (messages if isinstance(messages, list) else [])
        if isinstance(m, dict)
    ) or _text(request.get("prompt"))
    choices = response.get("choices")
    first = _dict(choices[0]) if isinstance(choices, list) and choices else {}
    message = _dict(first.get("message"))
    answer = message.get("content") if message else first.get("text")
    error = record.get("error")
    status = record.get("status")
    if error is None and isinstance(status, int) and status >= 400:
        error = f"HTTP {status}"
    return [
        f"{record.get('kind', 'request')} {index + 1}",
        prompt,
        _text(answer),
        "",
        "",
        None,
        _text(error) or None,
        first.get("finish_reason") or "",
        "",
        _text(message.get("reasoning_content")) if message else "",
    ]


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _group(record: dict[str, Any]) -> tuple[str, str] | None:
    for source in (record, record.get("metadata")):
        if isinstance(source, dict):
            for name in GROUP_FIELDS:
                value = source.get(name)
                if isinstance(value, (str, int)) and not isinstance(value, bool) and value != "":
                    return name, str(value)
    return None


def _answer_figures(record: dict[str, Any], per_answer: dict[str, list[float]]) -> None:
    latency = record.get("latency_s")
    if _finite(latency) and not record.get("cached"):
        per_answer["latency"].append(float(latency))
    usage = record.get("usage")
    if isinstance(usage, dict):
        for key, name in (("completion_tokens", "completion"), ("prompt_tokens", "prompt")):
            count = usage.get(key)
            if _finite(count):
                per_answer[name].append(float(count))


def _cache_distributions(path: Path) -> dict[str, list[float]]:
    """Latency and tokens of every model answer in the task's response cache (samples.jsonl
    does not carry them). Judge replies (keys `judge:…`) are left out. Read-only: a job may
    still be writing it."""
    per_answer: dict[str, list[float]] = {"latency": [], "completion": [], "prompt": []}
    if not path.is_file():
        return per_answer
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return per_answer
    try:
        rows = conn.execute(
            "SELECT json_extract(reply, '$.latency_s'),"
            " json_extract(reply, '$.usage.completion_tokens'),"
            " json_extract(reply, '$.usage.prompt_tokens')"
            " FROM responses WHERE key NOT LIKE '%:%' AND json_valid(reply)"
        ).fetchall()
    except sqlite3.Error:
        return per_answer  # an older or damaged cache: the page shows no chart, not an error
    finally:
        conn.close()
    for latency, completion, prompt in rows:
        for name, value in (("latency", latency), ("completion", completion), ("prompt", prompt)):
            if _finite(value):
                per_answer[name].append(float(value))
    return per_answer


def histogram(values: list[float], unit: str, bins: int = _HISTOGRAM_BINS) -> dict[str, Any] | None:
    """Equal-width bins over [min, max], with the count, median and p95 beside them."""
    if not values:
        return None
    ordered = sorted(values)
    low, high = ordered[0], ordered[-1]
    width = (high - low) / bins if high > low else 1.0
    counts = [0] * (bins if high > low else 1)
    for value in ordered:
        counts[min(len(counts) - 1, int((value - low) / width))] += 1
    return {
        "unit": unit,
        "n": len(ordered),
        "min": low,
        "max": high,
        "width": width,
        "counts": counts,
        "p50": _quantile(ordered, 0.5),
        "p95": _quantile(ordered, 0.95),
    }


def _quantile(ordered: list[float], q: float) -> float:
    position = (len(ordered) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
