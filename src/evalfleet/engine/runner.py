"""Run one job: build every request, send only those the cache lacks, score, write results.

The hot path is a fixed pool of `parallelism` worker coroutines pulling from one shared
iterator (no task per request, no queue): each answer is committed to the cache at the
end of the event-loop turn it arrived in, so a run killed at 90 % resumes by sending only
what was never answered (at most that one turn's answers go again).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from evalfleet.contract import EXIT_OK, EXIT_SAMPLE_ERRORS, spec
from evalfleet.contract.files import create_private, make_private_dirs, open_private
from evalfleet.contract.spec import JobSpec, ParamsSpec
from evalfleet.engine import loglikelihood
from evalfleet.engine.cache import ResponseCache, canonical_payload, request_key
from evalfleet.engine.client import (
    EndpointClient,
    GiveUp,
    Reply,
    RequestFailed,
    RetryPolicy,
    drain_workers,
    endpoint_api_key,
)
from evalfleet.engine.interceptors import Interceptors, build_interceptors
from evalfleet.engine.judge import JudgeOutcome, check_judge, is_judged, judge_answers
from evalfleet.engine.results import (
    Scored,
    build_results,
    percentile,
    score_answer,
    scores_cheaply,
    write_output,
    write_results,
)
from evalfleet.engine.transport import TlsSettings
from evalfleet.exceptions import ConfigError, EndpointUnreachable, EngineError
from evalfleet.tasks.base import Sample, Task, is_loglikelihood
from evalfleet.tasks.registry import create_task


@dataclass
class RunProgress:
    """Counters the engine updates and a display may read; never rendered here."""

    task: str = ""
    total: int = 0
    done: int = 0
    cached: int = 0
    errors: int = 0
    retries: int = 0
    started: float = field(default_factory=time.monotonic)
    # time.monotonic() as the first request goes out, and once every answer is stored:
    # between the two is how long the endpoint was kept busy.
    fetch_started: float | None = None
    fetch_ended: float | None = None

    @property
    def sent(self) -> int:
        return self.done - self.cached


class _Item(NamedTuple):  # a tuple: one is built per request, at a third of a dataclass's cost
    sample: Sample
    repeat: int
    key: str
    body: dict[str, Any]
    payload: bytes  # the body as sent, encoded once: it is also what the cache key hashes


def effective_params(job: JobSpec, task: Task) -> ParamsSpec:
    """The job's parameters; those its file leaves out from the task's defaults."""
    return spec.effective_params(task.default_params, job.params.model_dump(exclude_unset=True))


def build_body(
    task: Task,
    sample: Sample,
    params: ParamsSpec,
    model: str,
    repeat: int,
    interceptors: Interceptors,
    index: int = 0,
) -> dict[str, Any]:
    """The request body of `sample`'s `repeat`-th try. `index` numbers the requests as a
    reference harness does (all samples once, then all again per repeat: repeat x samples +
    position), for a task whose reference derives each request's seed from it
    (`task.request_seed(index, params.seed)`, e.g. simple-evals' SeedGenerator)."""
    body: dict[str, Any] = {"model": model, **task.request(sample)}
    if params.temperature is not None:
        body["temperature"] = params.temperature
    if params.top_p is not None:
        body["top_p"] = params.top_p
    if params.max_new_tokens is not None:
        body["max_tokens"] = params.max_new_tokens
    request_seed = getattr(task, "request_seed", None)
    if request_seed is not None:
        seed = request_seed(index, params.seed)
        if seed is not None:
            body["seed"] = seed
    elif params.seed is not None:
        body["seed"] = params.seed + repeat
    if params.stop:
        body["stop"] = list(params.stop)
    if params.extra_body:
        body.update(params.extra_body)
    return interceptors.apply_request(body)


def _setup_logs(output_dir: Path) -> logging.Logger:
    logs = output_dir / "logs"
    make_private_dirs(logs)
    logger = logging.getLogger(f"evalfleet.eval.{output_dir}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not logger.handlers:
        handler = logging.FileHandler(create_private(logs / "eval.log"), encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    return logger


def _close_logs(logger: logging.Logger) -> None:
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)


async def evaluate(
    job: JobSpec,
    *,
    rescore: bool = False,
    progress: RunProgress | None = None,
    dispatched: asyncio.Event | None = None,
) -> tuple[dict[str, Any], int]:
    """Run (or, with `rescore`, only re-score) a job. Returns (results, exit code).

    `dispatched` is set once every request has been handed to the endpoint (only answers
    are awaited from then on), or when the job ends: the next task may start filling the
    endpoint's slots."""
    progress = progress or RunProgress()
    dispatched = dispatched or asyncio.Event()
    output_dir = Path(job.output_dir)
    make_private_dirs(output_dir)
    logger = _setup_logs(output_dir)
    try:
        with _rare_garbage_collection():
            return await _evaluate(job, rescore, progress, output_dir, logger, dispatched)
    finally:
        dispatched.set()
        _close_logs(logger)


@contextlib.contextmanager
def _rare_garbage_collection() -> Iterator[None]:
    """Collect cycles every 50,000 allocations instead of every 700 while a job runs.

    Each request allocates a dozen containers, and every answer is kept until scoring: at
    the default thresholds the collector ran ~900 times in a 15,000-request run, and its
    full passes over every kept answer stall the event loop while replies wait (measured:
    105 -> 85 µs of CPU per request, 0.89 -> 0.91 of the ideal rate at 1,024 in flight).
    Cycles are still collected, only in larger batches. Jobs that run side by side share
    the setting: the thresholds come back when the last of them ends."""
    if _RARE_GC.jobs == 0:
        _RARE_GC.saved = gc.get_threshold()
        gc.set_threshold(50_000, 20, 10)
    _RARE_GC.jobs += 1
    try:
        yield
    finally:
        _RARE_GC.jobs -= 1
        if _RARE_GC.jobs == 0:
            gc.set_threshold(*_RARE_GC.saved)


@dataclass
class _RareCollections:
    jobs: int = 0  # running with rare collections now
    saved: tuple[int, int, int] = (700, 10, 10)  # the thresholds to restore after the last


_RARE_GC = _RareCollections()


async def _evaluate(
    job: JobSpec,
    rescore: bool,
    progress: RunProgress,
    output_dir: Path,
    logger: logging.Logger,
    dispatched: asyncio.Event,
) -> tuple[dict[str, Any], int]:
    started = time.time()
    task = create_task(
        job.task,
        dataset_path=job.dataset.path if job.dataset else None,
        scorer=job.scorer.name if job.scorer else None,
        pattern=job.scorer.pattern if job.scorer else None,
        ignore_case=job.scorer.ignore_case if job.scorer else True,
        endpoint_type=job.endpoint.type,
        options=job.task_options,
    )
    params = effective_params(job, task)
    by_loglikelihood = is_loglikelihood(task)
    if by_loglikelihood:
        params = _check_loglikelihood_job(job, params, logger)
    if hasattr(task, "n_samples"):
        task.n_samples = params.n_samples  # pass@k needs to know how many tries there were
    if hasattr(task, "base_seed") and params.seed is not None:
        task.base_seed = params.seed  # a reference that also draws its data order from it
    judged = is_judged(task)
    if judged:
        check_judge(job.task, task.default_params, params)
    interceptors = build_interceptors(job.interceptors, "job.interceptors")
    samples = list(task.samples(params.limit_samples))
    items: list[_Item] = []
    failures: dict[str, str] = {}
    client_stats: dict[str, int] = {"requests": 0, "retries": 0, "throttled": 0}
    # Log-likelihood tasks: each sample's (context, continuation) pairs, and per request key
    # where its continuation starts and ends in the prompt.
    pairs: dict[str, list[tuple[str, str]]] = {}
    if by_loglikelihood:
        pairs = {sample.id: list(task.pairs(sample)) for sample in samples}  # type: ignore[attr-defined]
    splits: dict[str, tuple[int, int]] | None = {} if by_loglikelihood else None
    requests_total = (
        sum(map(len, pairs.values())) if by_loglikelihood else len(samples) * params.n_samples
    )
    progress.task, progress.total = job.task, requests_total
    cache = ResponseCache(output_dir / "cache.sqlite")
    prescored: dict[str, Scored] = {}
    judge_outcome: JudgeOutcome | None = None
    try:
        answers = cache.load(warn=logger.warning)

        def to_send(item: _Item) -> bool:
            """Record `item`; whether it still has to be sent (not cached, not a rescore)."""
            items.append(item)
            if item.key in answers:
                progress.done += 1
                progress.cached += 1
                return False
            if rescore:
                failures[item.key] = "not in the response cache (--rescore sends no requests)"
                return False
            return True

        def unanswered_pairs() -> Iterator[_Item]:
            assert splits is not None
            for sample in samples:
                for context, continuation in pairs[sample.id]:
                    body, split = loglikelihood.build_body(
                        context, continuation, params, job.endpoint.model_id, interceptors
                    )
                    payload = canonical_payload(body)
                    item = _Item(sample, 0, request_key(payload, 0), body, payload)
                    splits[item.key] = split
                    if to_send(item):
                        yield item

        def unanswered() -> Iterator[_Item]:
            # Built lazily: request building overlaps with the first answers arriving.
            last_rounds_from = requests_total - 2 * params.parallelism
            count = len(samples)
            # A task whose reference varies a sample per repeat (GPQA's choice order) says
            # how: `for_repeat(sample, index)`, index numbering requests as in build_body.
            for_repeat = getattr(task, "for_repeat", None)
            for position, first in enumerate(samples):
                for repeat in range(params.n_samples):
                    if len(items) >= last_rounds_from:
                        last_rounds.set()
                    index = repeat * count + position
                    sample = for_repeat(first, index) if for_repeat and repeat else first
                    body = build_body(
                        task, sample, params, job.endpoint.model_id, repeat, interceptors, index
                    )
                    payload = canonical_payload(body)
                    item = _Item(sample, repeat, request_key(payload, repeat), body, payload)
                    if to_send(item):
                        yield item
            last_rounds.set()

        # Set once the last two rounds of requests are being sent (at most 2 x parallelism
        # left): from then on, answers are scored as they arrive.
        last_rounds = asyncio.Event()
        pending = unanswered_pairs() if by_loglikelihood else unanswered()
        first = next(pending, None)
        if first is not None:
            logger.info(
                "job %s task %s: %d samples x %d repeats to %s%s",
                job.job_id, job.task, len(samples), params.n_samples, job.endpoint.url,
                f" ({requests_total} log-likelihood requests)" if by_loglikelihood else "",
            )  # fmt: skip
            # Answers are scored on the loop during the last two rounds of requests, while
            # it increasingly waits, so that little is left when the last one lands (15,000
            # answers: ~0.15 s otherwise). Not earlier: it would delay replies while the
            # endpoint could still be kept busier.
            arrived: deque[_Item] | None = deque() if scores_cheaply(task) else None
            scoring = (
                asyncio.ensure_future(
                    _score_as_they_arrive(
                        last_rounds, arrived, answers, prescored, task, interceptors
                    )
                )
                if arrived is not None
                else None
            )
            try:
                client_stats = await _fetch(
                    job, params, itertools.chain([first], pending), cache, answers, failures,
                    progress, interceptors, output_dir, logger, splits, arrived, dispatched,
                )  # fmt: skip
            finally:
                if scoring is not None:
                    scoring.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await scoring
        logger.info("%d answers came from the cache", progress.cached)
        if judged:
            judge_outcome = await judge_answers(
                task=task, params=params, items=[(i.sample, i.key) for i in items],
                answers=answers, failures=failures, interceptors=interceptors, cache=cache,
                rescore=rescore, logger=logger,
            )  # fmt: skip
    finally:
        cache.close()
    progress.fetch_ended = time.monotonic()
    if by_loglikelihood:
        scored_items, answers, failures = _per_sample(samples, pairs, items, answers, failures)
    else:
        scored_items = [(i.sample, i.repeat, i.key) for i in items]
    results, lines = build_results(
        job=job,
        task=task,
        params=params,
        items=scored_items,
        answers=answers,
        failures=failures,
        interceptors=interceptors,
        wall_time_s=time.time() - started,
        client_stats=client_stats,
        scored=prescored,
    )
    if judge_outcome is not None and params.judge is not None:
        results["counts"].update(judge_outcome.counts())
        results["judge"] = {
            "model_id": params.judge.model_id,
            "url": params.judge.url,
            "requests": judge_outcome.client,
        }
    _write_lines(output_dir / "samples.jsonl", lines)
    write_results(output_dir / "results.json", results)
    errors = results["counts"]["errors"]
    logger.info("done: %s, %d errors", json.dumps(results["metrics"]), errors)
    return results, (EXIT_SAMPLE_ERRORS if errors else EXIT_OK)


async def _fetch(
    job: JobSpec,
    params: ParamsSpec,
    pending: Iterator[_Item],
    cache: ResponseCache,
    answers: dict[str, dict[str, Any]],
    failures: dict[str, str],
    progress: RunProgress,
    interceptors: Interceptors,
    output_dir: Path,
    logger: logging.Logger,
    splits: dict[str, tuple[int, int]] | None = None,
    arrived: deque[_Item] | None = None,
    dispatched: asyncio.Event | None = None,
) -> dict[str, int]:
    """Send every pending request; with `splits` (a log-likelihood task) each reply is
    reduced to its continuation's logprobs before it is cached. Each answered item is
    appended to `arrived`, when given."""
    api_key = endpoint_api_key(job.endpoint.api_key_name)
    # A log-likelihood request the endpoint refuses (400) or answers without prompt logprobs
    # means it cannot serve the task at all, unless it already scored some: stop at once.
    state: dict[str, int] = {"scored_a_pair": bool(answers)}
    give_up = GiveUp()
    abort = give_up.abort
    logged = 0
    request_log = (
        open_private(output_dir / "logs" / "requests.jsonl", "a")
        if interceptors.log_samples
        else None
    )
    items = pending

    async def worker(client: EndpointClient) -> None:
        nonlocal logged
        for item in items:
            try:
                reply = await client.send(item.payload)
                if splits is None:
                    answer = reply.as_dict()
                else:
                    answer = _reduce(reply, splits[item.key], state)
            except RequestFailed as exc:
                if splits is not None and exc.status == 400 and not state["scored_a_pair"]:
                    exc = RequestFailed(exc.reason, kind="capability", status=400, fatal=True)
                failures[item.key] = exc.reason
                progress.errors += 1
                if give_up.failed(exc):
                    return
                continue
            give_up.answered()
            cache.put_soon(item.key, answer)
            answers[item.key] = answer
            if arrived is not None:
                arrived.append(item)
            progress.done += 1
            progress.retries = client.stats.retries
            if request_log is not None and logged < interceptors.log_samples:
                logged += 1
                request_log.write(json.dumps({"request": item.body, "response": answer}) + "\n")
        if dispatched is not None:
            dispatched.set()  # nothing left to send: a next task may take the free slots

    retry = RetryPolicy(max_retries=params.max_retries)
    try:
        async with EndpointClient(
            job.endpoint.request_url,  # `url` (in every message) hides its credentials
            api_key=api_key,
            parallelism=params.parallelism,
            timeout_s=params.request_timeout,
            retry=retry,
            tls=TlsSettings(job.endpoint.ca_bundle, insecure=not job.endpoint.verify_tls),
        ) as client:
            count = min(params.parallelism, progress.total - progress.done)
            progress.fetch_started = time.monotonic()
            workers = [asyncio.ensure_future(worker(client)) for _ in range(max(1, count))]
            watch = asyncio.ensure_future(_watch_output_dir(output_dir, abort))
            await drain_workers(workers, abort, watch)
            stats = client.stats.as_dict()
    finally:
        if request_log is not None:
            request_log.close()
    if abort:
        reason = abort[0]
        kept = len(answers)
        logger.error("aborted: %s (%d answers kept in the cache)", reason.reason, kept)
        if reason.kind == "capability":
            raise EngineError(
                f"task {job.task} scores answers by log-likelihood and needs "
                f"{loglikelihood.REQUIREMENT}; {job.endpoint.url} answered: {reason.reason}"
            )
        if reason.kind == "gone":
            raise EngineError(reason.reason)
        if reason.fatal:
            raise EngineError(
                f"the endpoint refused the requests: {reason.reason}; {kept} answers kept in the "
                f"cache ({job.endpoint.url})"
            )
        if reason.kind not in ("connection", "timeout"):
            raise EndpointUnreachable(
                f"endpoint {job.endpoint.url} gives no usable answers: {reason.reason}; "
                f"stopped early, {kept} answers are kept in the cache, run the job again to "
                "continue"
            )
        raise EndpointUnreachable(
            f"endpoint {job.endpoint.url} is unreachable: {reason.reason}; {kept} answers are "
            "kept in the cache, run the job again to continue"
        )
    return stats


async def _watch_output_dir(output_dir: Path, abort: list[RequestFailed]) -> None:
    """Stop sending once the job's directory is gone (deleted under a running job): every
    further answer would be lost with it."""
    while True:
        await asyncio.sleep(OUTPUT_DIR_CHECK_S)
        if not output_dir.is_dir():
            abort.append(
                RequestFailed(
                    f"the job's directory {output_dir} was deleted while the job ran; it "
                    "stopped sending requests (the answers it held are gone with it)",
                    kind="gone",
                    fatal=True,
                )
            )
            return


OUTPUT_DIR_CHECK_S = 1.0


async def _score_as_they_arrive(
    start: asyncio.Event,
    arrived: deque[_Item],
    answers: dict[str, dict[str, Any]],
    scored: dict[str, Scored],
    task: Task,
    interceptors: Interceptors,
) -> None:
    """Once `start` is set, score the answers that have arrived and those still arriving, a
    millisecond of work at a time so that no reply waits behind it for longer; runs until
    cancelled."""
    await start.wait()
    clock = time.perf_counter
    while True:
        if not arrived:
            await asyncio.sleep(0.01)
            continue
        deadline = clock() + 0.001
        while arrived and clock() < deadline:
            item = arrived.popleft()
            # An answer that fails to score is scored again with the rest at the end, where
            # the error surfaces as it would have without this.
            with contextlib.suppress(Exception):
                scored[item.key] = score_answer(
                    task, interceptors, item.sample, item.repeat, answers[item.key]
                )
        await asyncio.sleep(0)


def _check_loglikelihood_job(
    job: JobSpec, params: ParamsSpec, logger: logging.Logger
) -> ParamsSpec:
    if job.endpoint.type != "completions":
        raise ConfigError(
            f"endpoint.type: task {job.task} scores answers by log-likelihood and needs "
            f"{loglikelihood.REQUIREMENT}; got {job.endpoint.type!r} ({job.endpoint.url})"
        )
    if params.n_samples != 1:  # a log-likelihood is deterministic: repeats would only cost
        logger.info("n_samples %d ignored: log-likelihoods need one request", params.n_samples)
        params = params.model_copy(update={"n_samples": 1})
    return params


def _reduce(reply: Reply, split: tuple[int, int], state: dict[str, int]) -> dict[str, Any]:
    """A log-likelihood reply as it is cached; RequestFailed when it cannot be scored."""
    try:
        answer = loglikelihood.continuation_answer(reply, *split)
    except loglikelihood.NotScorable as exc:
        reason = f"malformed response: {exc}"
        if state["scored_a_pair"]:
            raise RequestFailed(reason, kind="malformed") from None
        raise RequestFailed(reason, kind="capability", fatal=True) from None
    state["scored_a_pair"] = 1
    return answer


def _per_sample(
    samples: list[Sample],
    pairs: dict[str, list[tuple[str, str]]],
    items: list[_Item],
    answers: dict[str, dict[str, Any]],
    failures: dict[str, str],
) -> tuple[list[tuple[Sample, int, str]], dict[str, dict[str, Any]], dict[str, str]]:
    """A log-likelihood task's per-pair answers folded into one answer per sample (scored
    only when every pair of it has one), keyed by the sample id."""
    keys: dict[str, list[str]] = {}
    for item in items:
        keys.setdefault(item.sample.id, []).append(item.key)
    folded: dict[str, dict[str, Any]] = {}
    folded_failures: dict[str, str] = {}
    scored_items = []
    for sample in samples:
        key = f"sample:{sample.id}"
        scored_items.append((sample, 0, key))
        sample_keys = keys.get(sample.id, [])
        missing = [k for k in sample_keys if k not in answers]
        if missing:
            folded_failures[key] = failures.get(missing[0], "no answer")
            continue
        folded[key] = loglikelihood.per_sample_answer(
            pairs[sample.id], [answers[k] for k in sample_keys]
        )
    return scored_items, folded, folded_failures


def _write_lines(path: Path, lines: list[str]) -> None:
    write_output(path, (f"{line}\n" for line in lines))


__all__ = ["EXIT_OK", "EXIT_SAMPLE_ERRORS", "RunProgress", "evaluate", "percentile"]
