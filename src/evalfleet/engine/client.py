"""The async client for OpenAI-compatible endpoints: one shared connection pool, retries
with jittered exponential backoff that honour `Retry-After`, and a concurrency limit that
halves on 429 and grows back as answers succeed.

Requests go through the lean keep-alive transport in `_http.py`, or through an aiohttp
session when a proxy applies to the endpoint or `EVALFLEET_HTTP=aiohttp` asks for it.

Every failure that reaches the caller is a `RequestFailed` with a one-line reason; the
foreign exceptions (aiohttp, asyncio, json) stop here.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from evalfleet.engine._http import FastTransport, proxy_applies
from evalfleet.engine.limits import AdaptiveLimit
from evalfleet.engine.transport import Response, Transport, TransportError
from evalfleet.exceptions import ConfigError

RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 521, 522, 524, 529})
# These mean every request will fail the same way: stop the run, don't grind through it.
FATAL_STATUS = frozenset({401, 403, 404})
MAX_RETRY_AFTER_S = 300.0


class RequestFailed(Exception):
    """A request that did not produce an answer; `reason` is one line for samples.jsonl."""

    def __init__(self, reason: str, *, kind: str, status: int | None = None, fatal: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # http | connection | timeout | malformed | no_text
        self.status = status
        self.fatal = fatal


@dataclass(slots=True)
class Reply:
    text: str
    finish_reason: str | None
    usage: dict[str, int]
    latency_s: float
    reasoning: str | None = None
    logprobs: Any = None
    attempts: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": self.usage,
            "latency_s": self.latency_s,
            "reasoning": self.reasoning,
            "logprobs": self.logprobs,
        }


@dataclass(slots=True)
class RawReply:
    """The endpoint's own answer, as `send_raw` returns it: a 200 (`data` is its body
    parsed, already checked to hold `choices`) or an error no retry could mend."""

    status: int
    body: bytes
    latency_s: float
    data: dict[str, Any] | None = None
    attempts: int = 1

    @property
    def reason(self) -> str:
        """An error answer in one line, as `RequestFailed` would give it."""
        return f"HTTP {self.status}: {_error_message(self.body)}"


_Answer = TypeVar("_Answer", Reply, RawReply)


@dataclass
class ClientStats:
    requests: int = 0
    retries: int = 0
    throttled: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "retries": self.retries, "throttled": self.throttled}


# Give up on a run, rather than on one request, after this many consecutive requests failed
# to reach the endpoint at all (each already after its full retry budget).
UNREACHABLE_AFTER = 3


@dataclass
class GiveUp:
    """When a run's workers stop sending: at a fatal failure, or once UNREACHABLE_AFTER
    requests in a row found no endpoint. The reason goes to `abort`, which
    `drain_workers` watches."""

    abort: list[RequestFailed] = field(default_factory=list)
    unreachable_streak: int = 0

    def failed(self, exc: RequestFailed) -> bool:
        """Record a failed request; whether the worker must stop."""
        if exc.fatal:
            self.abort.append(exc)
            return True
        if exc.kind in ("connection", "timeout"):
            self.unreachable_streak += 1
            if self.unreachable_streak >= UNREACHABLE_AFTER:
                self.abort.append(exc)
                return True
        return False

    def answered(self) -> None:
        self.unreachable_streak = 0


async def drain_workers(workers: Sequence[asyncio.Future[None]], abort: Sequence[object]) -> None:
    """Wait for `workers` to finish; once `abort` holds a reason, cancel the rest. A bug in
    a worker surfaces here rather than vanishing; none is left running on the way out."""
    workers = list(workers)
    try:
        while workers:
            done, running = await asyncio.wait(workers, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                finished.result()
            workers = list(running)
            if abort:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                workers = []
    finally:
        for worker in workers:
            worker.cancel()


@dataclass
class RetryPolicy:
    max_retries: int = 8
    base_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.cap_s, self.base_s * (2**attempt)) * self.rng.uniform(0.5, 1.0)
        return max(backoff, retry_after) if retry_after is not None else backoff


def endpoint_api_key(env_name: str | None) -> str | None:
    """The endpoint's API key from the env var job.json names (never the key itself)."""
    if not env_name:
        return None
    api_key = os.environ.get(env_name)
    if not api_key:
        raise ConfigError(f"endpoint.api_key_name: the env var {env_name} is not set")
    return api_key


class EndpointClient:
    """Sends request bodies to one URL; use as `async with EndpointClient(...) as client`."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None,
        parallelism: int,
        timeout_s: float,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.parallelism = parallelism
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        self.limit = AdaptiveLimit(parallelism)
        self.stats = ClientStats()
        self._sleep = sleep
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._transport: Transport | None = None

    @property
    def transport_name(self) -> str:
        """The transport in use ("evalfleet", "aiohttp"); "none" outside `async with`."""
        return self._transport.name if self._transport is not None else "none"

    async def __aenter__(self) -> EndpointClient:
        self._transport = _open_transport(self.url, self._headers, self.parallelism, self.timeout_s)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._transport is not None:
            await self._transport.aclose()

    async def send(self, body: dict[str, Any] | bytes) -> Reply:
        """POST `body` (a dict, or JSON bytes already encoded), retrying what may succeed
        later; raises RequestFailed otherwise."""
        payload = (
            body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
        )
        reply, attempts = await self._with_retries(payload, _accept_reply)
        reply.attempts = attempts
        return reply

    async def send_raw(self, payload: bytes) -> RawReply:
        """POST JSON bytes with exactly `send`'s retries, but hand back the endpoint's own
        answer: the 200 body as it came (checked to be JSON with `choices`, else retried
        like `send` would), or the status and body of an error that no retry can mend
        (a 400, say). Raises RequestFailed only once the retries are spent."""
        reply, attempts = await self._with_retries(payload, _accept_raw)
        reply.attempts = attempts
        return reply

    async def _with_retries(
        self, payload: bytes, accept: Callable[[Response, float], _Answer]
    ) -> tuple[_Answer, int]:
        """The one retry loop: `accept` turns a non-retryable answer into the caller's
        result, or raises _Retryable (a malformed 200) or RequestFailed."""
        attempt = 0
        while True:
            try:
                response, latency = await self._attempt(payload)
                answer = accept(response, latency)
                if response.status == 200:
                    self.limit.on_success()
                return answer, attempt + 1
            except _Retryable as exc:
                if attempt >= self.retry.max_retries:
                    raise RequestFailed(
                        f"{exc.reason} (gave up after {attempt + 1} attempts)",
                        kind=exc.kind,
                        status=exc.status,
                    ) from None
                if exc.status == 429:
                    self.stats.throttled += 1
                    self.limit.on_throttle()
                self.stats.retries += 1
                await self._sleep(self.retry.delay(attempt, exc.retry_after))
                attempt += 1

    async def _attempt(self, payload: bytes) -> tuple[Response, float]:
        """One POST: the response and its latency, or _Retryable for what a later
        attempt may mend (no connection, a timeout, a retryable status)."""
        if not self.limit.try_acquire():
            await self.limit.acquire()
        started = time.perf_counter()
        self.stats.requests += 1
        transport = self._transport
        assert transport is not None, "use EndpointClient as an async context manager"
        try:
            response = await transport.post(payload)
        except TransportError as exc:
            raise _Retryable(f"connection error: {_describe(exc)}", "connection") from None
        except asyncio.TimeoutError:
            raise _Retryable(f"timed out after {self.timeout_s:g} s", "timeout") from None
        finally:
            self.limit.release()
        status = response.status
        if status in RETRYABLE_STATUS:
            retry_after = _retry_after(response.retry_after)
            message = _error_message(response.body)
            raise _Retryable(f"HTTP {status}: {message}", "http", status, retry_after)
        return response, time.perf_counter() - started


def _open_transport(url: str, headers: dict[str, str], limit: int, timeout_s: float) -> Transport:
    """The lean transport, or aiohttp (imported only now) behind a proxy or when
    `EVALFLEET_HTTP=aiohttp` asks for it."""
    if os.environ.get("EVALFLEET_HTTP", "auto") != "aiohttp" and not proxy_applies(url):
        return FastTransport(url, headers, limit, timeout_s)
    from evalfleet.engine._aiohttp import AiohttpTransport

    return AiohttpTransport(url, headers, limit, timeout_s)


class _Retryable(Exception):
    def __init__(
        self, reason: str, kind: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.status = status
        self.retry_after = retry_after


def _accept_reply(response: Response, latency: float) -> Reply:
    if response.status != 200:
        status = response.status
        raise RequestFailed(
            f"HTTP {status}: {_error_message(response.body)}",
            kind="http",
            status=status,
            fatal=status in FATAL_STATUS,
        )
    return _parse_reply(response.body, latency)


def _accept_raw(response: Response, latency: float) -> RawReply:
    if response.status != 200:
        return RawReply(response.status, response.body, latency)
    data = _answer_json(response.body)
    return RawReply(200, response.body, latency, data)


def _answer_json(raw: bytes) -> dict[str, Any]:
    """A 200 body as JSON with a first choice; _Retryable (malformed) otherwise."""
    try:
        data = json.loads(raw)
        data["choices"][0]
    except json.JSONDecodeError:
        raise _Retryable(f"malformed response: not JSON ({_snippet(raw)})", "malformed") from None
    except (KeyError, IndexError, TypeError):
        raise _Retryable(f"malformed response: no choices ({_snippet(raw)})", "malformed") from None
    return data  # a dict: only a JSON object can be indexed by "choices"


def _parse_reply(raw: bytes, latency: float) -> Reply:
    data = _answer_json(raw)
    choice = data["choices"][0]
    try:
        message = choice.get("message")
        if message is not None:
            reasoning = message.get("reasoning_content") or message.get("reasoning")
            if message.get("content") is None and choice.get("finish_reason") != "length":
                raise RequestFailed(_no_text(message, choice, reasoning), kind="no_text")
            text = message.get("content") or ""
        else:
            text, reasoning = choice["text"], None
        if not isinstance(text, str):
            raise TypeError
    except (KeyError, TypeError, AttributeError):
        raise _Retryable(f"malformed response: no text ({_snippet(raw)})", "malformed") from None
    usage = data.get("usage") or {}
    return Reply(
        text=text,
        finish_reason=choice.get("finish_reason"),
        usage={k: v for k, v in usage.items() if isinstance(v, int)},
        latency_s=latency,
        reasoning=reasoning if isinstance(reasoning, str) else None,
        logprobs=choice.get("logprobs"),
    )


def _no_text(message: dict[str, Any], choice: dict[str, Any], reasoning: Any) -> str:
    """Why a finished chat reply without `content` is no answer to score (a wrong answer it
    is not): what the message holds instead, in the server's own terms."""
    finish = choice.get("finish_reason")
    if message.get("tool_calls"):
        return f"the reply has no text: message.content is null and it makes tool_calls (finish_reason {finish})"
    if isinstance(reasoning, str) and reasoning:
        return (
            f"the reply has no text: message.content is null and reasoning_content holds all "
            f"{len(reasoning)} characters (finish_reason {finish}); the server's reasoning "
            "parser did not find the end of the thinking"
        )
    return f"the reply has no text: message.content is null (finish_reason {finish})"


def _error_message(raw: bytes) -> str:
    try:
        data = json.loads(raw)
        error = data.get("error", data) if isinstance(data, dict) else data
        message = error.get("message") if isinstance(error, dict) else error
        if message:
            return " ".join(str(message).split())[:300]
    except (json.JSONDecodeError, AttributeError):
        pass
    return _snippet(raw) or "(empty body)"


def _snippet(raw: bytes, limit: int = 120) -> str:
    text = raw[:limit].decode("utf-8", "replace")
    return " ".join(text.split()) + ("…" if len(raw) > limit else "")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split())[:200]
