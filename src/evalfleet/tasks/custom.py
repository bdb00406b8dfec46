"""A task built from the user's own JSONL file and one of four simple scorers.

Each line holds `prompt` (a string) or `messages` (a chat), and `answer`; `id` is
optional. The headline metric is `accuracy`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from evalfleet.contract import SAMPLE_GROUP_FIELDS
from evalfleet.exceptions import ConfigError
from evalfleet.scoring.match import last_number, normalize_text, numbers_equal, parse_number
from evalfleet.scoring.stats import Metric, summarize
from evalfleet.tasks.base import Sample, Score

_raw_decode = json.JSONDecoder().raw_decode
_JSON_WHITESPACE = " \t\r\n"


def _load_line(line: str) -> Any:
    """`json.loads(line)` without its per-call wrapper, which was half the time of loading
    a 15,000-line dataset; anything unusual goes to `json.loads` for its exact error."""
    try:
        value, end = _raw_decode(line)
    except json.JSONDecodeError:
        return json.loads(line)  # leading whitespace reads fine; anything else raises
    if end != len(line) and line[end:].strip(_JSON_WHITESPACE):
        return json.loads(line)  # raises "Extra data"
    return value


SCORERS = ("exact_match", "contains", "regex", "numeric")

# Reads `check` kept and no `samples` took yet, by `CustomTask._identity`: one per task of
# the run being planned, each taken by its job.
_KEPT_READS: dict[tuple[Any, ...], list[Sample]] = {}
_KEEP_AT_MOST = 16
_GROUP_FIELDS = frozenset(SAMPLE_GROUP_FIELDS)


class CustomTask:
    default_params: dict[str, Any] = {"temperature": 0.0, "max_new_tokens": 1024}
    headline_metric = "accuracy"

    def __init__(
        self,
        name: str,
        path: str | Path,
        scorer: str,
        *,
        pattern: str | None = None,
        ignore_case: bool = True,
        endpoint_type: Literal["chat", "completions"] = "chat",
    ) -> None:
        if scorer not in SCORERS:
            raise ConfigError(
                f"scorer: unknown scorer {scorer!r} (expected one of {', '.join(SCORERS)})"
            )
        if scorer == "regex":
            if not pattern:
                raise ConfigError("scorer.pattern: required for the regex scorer")
            try:
                self._regex = re.compile(pattern, re.IGNORECASE if ignore_case else 0)
            except re.error as exc:
                raise ConfigError(f"scorer.pattern: invalid regular expression: {exc}") from None
        self.name = name
        self.path = Path(path)
        self.scorer = scorer
        self.ignore_case = ignore_case
        self.endpoint_type = endpoint_type

    def samples(self, limit: int | None) -> Iterable[Sample]:
        """The file's samples (up to `limit`): those `check` kept, if the file has not
        changed since, else read now."""
        kept = _KEPT_READS.pop(self._identity(limit), None)
        return kept if kept is not None else self._read(limit)

    def check(self, limit: int | None) -> list[Sample]:
        """Read the file as `samples` does (raising what it would) and keep the samples for
        the next `samples` of the same, unchanged file in this process: `evalfleet run`
        checks each dataset while planning, then its job reads it in the same process
        (2,048 rows: ~15 ms of the run's start-up)."""
        key = self._identity(limit)  # before reading: a change while it reads is a miss
        samples = self._read(limit)
        while len(_KEPT_READS) >= _KEEP_AT_MOST:  # a long-lived caller planning many runs
            del _KEPT_READS[next(iter(_KEPT_READS))]
        _KEPT_READS[key] = samples
        return samples

    def _identity(self, limit: int | None) -> tuple[Any, ...]:
        """The file (path, inode, size, mtime) and how it is read."""
        try:
            stat = self.path.stat()
        except OSError as exc:
            raise self._unreadable(exc) from None
        return (
            str(self.path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
            limit, self.endpoint_type,
        )  # fmt: skip

    def _unreadable(self, exc: OSError) -> ConfigError:
        return ConfigError(f"dataset.path: cannot read {self.path}: {exc.strerror}")

    def _read(self, limit: int | None) -> list[Sample]:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise self._unreadable(exc) from None
        try:
            lines = data.decode("utf-8").splitlines()
        except UnicodeDecodeError as exc:
            at = data.count(b"\n", 0, exc.start) + 1
            raise ConfigError(
                f"{self.path}:{at}: not UTF-8 text (byte 0x{data[exc.start]:02x}: {exc.reason});"
                " save the file as UTF-8"
            ) from None
        samples = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            samples.append(self._sample(line, number))
            if limit is not None and len(samples) >= limit:
                break
        if not samples:
            raise ConfigError(f"dataset.path: {self.path} holds no samples")
        ids = [s.id for s in samples]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"dataset.path: {self.path}: sample ids are not unique")
        return samples

    def _sample(self, line: str, number: int) -> Sample:
        try:
            row = _load_line(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{self.path}:{number}: invalid JSON: {exc.msg}") from None
        if not isinstance(row, dict) or "answer" not in row:
            raise ConfigError(
                f"{self.path}:{number}: expected an object with 'answer' and 'prompt' or 'messages'"
            )
        sample_id = str(row.get("id", number))
        # A row's category/subset/... column: the report filters by it.
        groups = (
            {}
            if _GROUP_FIELDS.isdisjoint(row)  # most datasets: a set test, not five lookups
            else {
                name: row[name]
                for name in SAMPLE_GROUP_FIELDS
                if isinstance(row.get(name), (str, int)) and not isinstance(row[name], bool)
            }
        )
        if isinstance(row.get("messages"), list):
            if self.endpoint_type != "chat":
                raise ConfigError(
                    f"{self.path}:{number}: 'messages' needs a chat endpoint (endpoint_type: chat)"
                )
            return Sample(
                sample_id, row["answer"], messages=tuple(row["messages"]), metadata=groups
            )
        if isinstance(row.get("prompt"), str):
            if self.endpoint_type == "chat":
                return Sample(
                    sample_id, row["answer"],
                    messages=({"role": "user", "content": row["prompt"]},), metadata=groups,
                )  # fmt: skip
            return Sample(sample_id, row["answer"], prompt=row["prompt"], metadata=groups)
        raise ConfigError(
            f"{self.path}:{number}: expected 'prompt' (a string) or 'messages' (a list)"
        )

    def request(self, sample: Sample) -> dict[str, Any]:
        if sample.messages is not None:
            return {"messages": list(sample.messages)}
        return {"prompt": sample.prompt}

    def score(self, sample: Sample, response: str) -> Score:
        target = str(sample.target)
        if self.scorer == "exact_match":
            hit = normalize_text(response, self.ignore_case) == normalize_text(
                target, self.ignore_case
            )
            return Score(float(hit), response.strip())
        if self.scorer == "contains":
            haystack, needle = (
                (response.lower(), target.lower()) if self.ignore_case else (response, target)
            )
            return Score(float(needle.strip() in haystack), None)
        if self.scorer == "regex":
            match = self._regex.search(response)
            extracted = (match.group(1) if match.groups() else match.group(0)) if match else None
            if extracted is None:
                return Score(0.0, None)
            hit = normalize_text(extracted, self.ignore_case) == normalize_text(
                target, self.ignore_case
            )
            return Score(float(hit), extracted)
        extracted = last_number(response)
        want = parse_number(target)
        got = parse_number(extracted) if extracted is not None else None
        hit = got is not None and want is not None and numbers_equal(got, want)
        return Score(float(hit), extracted)

    def aggregate(self, per_sample: Sequence[tuple[Sample, float]]) -> dict[str, Metric]:
        return {"accuracy": summarize([value for _, value in per_sample])}
