"""The judge step: a task that asks an LLM judge about each answer (simple-evals' math
equality check) gets the judge's reply beside the model's when it scores.

A judge task (see `is_judged`) has `judge_request(sample, response) -> dict | None`: the
task's part of a judge request (its `messages`), or None when the answer needs no judge
(nothing extracted, or settled without one). Once the model's answers are in, the engine
builds each judge request from the answer as the task scores it (after the response
interceptors), sends those the cache lacks to the judge endpoint (`params.judge`, what
`config.params.extra.judge` sets) through the same client (retries, adaptive concurrency)
and caches each reply as its own row, under a key of its own (`judge:` + the body's hash).
Equal judge requests (the same gold and extracted answers) are sent once.

Scoring then calls `task.score(sample, response, judge_reply)`, with the reply's text
(None when no judge was asked). Everything the scores depend on is in the cache, so a run
killed during the judge step resumes by sending only the judge requests never answered,
and `--rescore` re-scores without a single request.

The request is the one the reference's judge client sends: backend `openai` (the OpenAI
SDK at `url` as its base URL, so `{url}/chat/completions`) posts
`{model, messages, temperature, max_tokens, top_p, stream: false}`; backend `generic`
(simple-evals' aiohttp sampler, `url` as the full URL) the same without `stream`. No
interceptor applies (they shape the evaluated model's requests).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from evalfleet.contract.spec import JudgeSpec, ParamsSpec
from evalfleet.engine.cache import ResponseCache, canonical_payload
from evalfleet.engine.client import (
    EndpointClient,
    GiveUp,
    RequestFailed,
    RetryPolicy,
    drain_workers,
)
from evalfleet.engine.environ import job_environ
from evalfleet.engine.interceptors import Interceptors
from evalfleet.exceptions import ConfigError, EndpointUnreachable, EngineError
from evalfleet.tasks.base import Sample

KEY_PREFIX = "judge:"


class JudgedTask(Protocol):
    """The methods a task adds to `Task` to have its answers judged."""

    def judge_request(self, sample: Sample, response: str) -> dict[str, Any] | None: ...


def is_judged(task: object) -> bool:
    return callable(getattr(task, "judge_request", None))


def judge_url(judge: JudgeSpec) -> str:
    """Where the judge's requests go: the OpenAI SDK appends `/chat/completions` to its
    base URL (a URL that already ends so is taken as it is); `generic` posts to `url`."""
    url = str(judge.url)
    if judge.backend == "generic" or url.rstrip("/").endswith("/chat/completions"):
        return url
    return url.rstrip("/") + "/chat/completions"


def judge_model(judge: JudgeSpec) -> str:
    """The model name the reference's OpenAI judge sends: it drops six characters when
    the id contains `azure-` (meant for an `azure-` prefix)."""
    model = str(judge.model_id)
    if judge.backend != "generic" and "azure-" in model:
        return model[6:]
    return model


def judge_body(judge: JudgeSpec, request: dict[str, Any]) -> dict[str, Any]:
    """The whole judge request body for the task's part of it."""
    body: dict[str, Any] = {
        "model": judge_model(judge),
        **request,
        "temperature": judge.temperature,
        "max_tokens": judge.max_tokens,
        "top_p": judge.top_p,
    }
    if judge.backend != "generic":
        body["stream"] = False
    return body


def judge_api_key(judge: JudgeSpec) -> str | None:
    """The key the reference's judge client would use. `openai`: the named env var (an
    error when unset), else OPENAI_API_KEY, else the SDK's placeholder; `generic`: the
    named env var, none when unset or unnamed."""
    if judge.backend == "generic":
        return (job_environ().get(judge.api_key) or None) if judge.api_key else None
    if judge.api_key:
        value = job_environ().get(judge.api_key)
        if not value:
            raise ConfigError(
                f"params.judge.api_key: the env var {judge.api_key} is not set "
                "(config.params.extra.judge.api_key names the env var holding the judge's key)"
            )
        return value
    return job_environ().get("OPENAI_API_KEY") or "dummy_key"


def check_judge(task_name: str, task_defaults: dict[str, Any], params: ParamsSpec) -> None:
    """Stop before any request when a judge task's judge is not set or its key is missing."""
    from evalfleet.contract.spec import missing_judge

    missing = missing_judge(task_defaults, params)
    if missing:
        raise ConfigError(f"task {task_name} {missing}")
    if params.judge is not None and "judge" in task_defaults:
        judge_api_key(params.judge)


@dataclass
class JudgeOutcome:
    """What the judge step did, for results.json (`counts.judge_*`, `judge`)."""

    asked: int = 0  # answers that needed the judge
    cached: int = 0  # of those, answered from the cache
    errors: int = 0  # of those, without a judge reply
    client: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "judge_requests": self.asked,
            "judge_cached": self.cached,
            "judge_errors": self.errors,
        }


@dataclass(frozen=True)
class _Pending:
    key: str
    payload: bytes


async def judge_answers(
    *,
    task: Any,
    params: ParamsSpec,
    items: Iterable[tuple[Sample, str]],
    answers: dict[str, dict[str, Any]],
    failures: dict[str, str],
    interceptors: Interceptors,
    cache: ResponseCache,
    rescore: bool,
    logger: logging.Logger,
) -> JudgeOutcome:
    """Judge every answered (sample, answer key) in `items`. Each judged answer gains a
    `judge` entry (the reply's text) in `answers`; an answer whose judge request failed is
    taken out of `answers` and its failure recorded, so that it counts as a sample error."""
    judge = params.judge
    assert judge is not None
    outcome = JudgeOutcome()
    wanted: dict[str, str] = {}  # answer key -> judge key
    to_send: dict[str, _Pending] = {}
    for sample, key in items:
        answer = answers.get(key)
        if answer is None:
            continue
        text, _, _ = interceptors.apply_response(answer["text"], answer.get("reasoning"))
        request = task.judge_request(sample, text)
        if request is None:
            continue
        payload = canonical_payload(judge_body(judge, request))
        judge_key = KEY_PREFIX + hashlib.sha256(payload).hexdigest()
        wanted[key] = judge_key
        outcome.asked += 1
        if judge_key in answers:
            outcome.cached += 1
        elif not rescore:
            to_send.setdefault(judge_key, _Pending(judge_key, payload))
    judge_failures: dict[str, str] = {}
    if to_send:
        logger.info("judge %s: %d requests to %s", judge.model_id, len(to_send), judge_url(judge))
        outcome.client = await _send(judge, params, list(to_send.values()), cache, answers,
                                     judge_failures)  # fmt: skip
    for key, judge_key in wanted.items():
        reply = answers.get(judge_key)
        if reply is None:
            reason = judge_failures.get(
                judge_key, "not in the response cache (--rescore sends no requests)"
            )
            failures[key] = f"judge: {reason}"
            del answers[key]
            outcome.errors += 1
            continue
        answers[key] = {**answers[key], "judge": reply["text"]}
    return outcome


async def _send(
    judge: JudgeSpec,
    params: ParamsSpec,
    pending: list[_Pending],
    cache: ResponseCache,
    answers: dict[str, dict[str, Any]],
    failures: dict[str, str],
) -> dict[str, int]:
    url = judge_url(judge)
    parallelism = min(params.parallelism, judge.max_concurrent_requests or params.parallelism)
    give_up = GiveUp()
    abort = give_up.abort
    queue = iter(pending)

    async def worker(client: EndpointClient) -> None:
        for item in queue:
            try:
                reply = await client.send(item.payload)
            except RequestFailed as exc:
                failures[item.key] = exc.reason
                if give_up.failed(exc):
                    return
                continue
            give_up.answered()
            answer = reply.as_dict()
            cache.put_soon(item.key, answer)
            answers[item.key] = answer

    async with EndpointClient(
        url,
        api_key=judge_api_key(judge),
        parallelism=parallelism,
        timeout_s=judge.request_timeout or params.request_timeout,
        retry=RetryPolicy(
            max_retries=judge.max_retries if judge.max_retries is not None else params.max_retries
        ),
    ) as client:
        workers = [
            asyncio.ensure_future(worker(client)) for _ in range(min(parallelism, len(pending)))
        ]
        await drain_workers(workers, abort)
        stats = client.stats.as_dict()
    if abort:
        reason = abort[0]
        kept = sum(1 for key in answers if key.startswith(KEY_PREFIX))
        if reason.fatal:
            raise EngineError(
                f"the judge endpoint refused the requests: {reason.reason} ({url}); the "
                f"model's answers and {kept} judge replies are kept in the cache"
            )
        raise EndpointUnreachable(
            f"judge endpoint {url} is unreachable: {reason.reason}; the model's answers and "
            f"{kept} judge replies are kept in the cache, run the job again to continue"
        )
    return stats
