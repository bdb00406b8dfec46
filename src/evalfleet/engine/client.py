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
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from evalfleet.engine._http import FastTransport, proxy_applies
from evalfleet.engine.budget import budget_for
from evalfleet.engine.environ import job_environ
from evalfleet.engine.transport import (
    CertificateError,
    Response,
    TlsSettings,
    Transport,
    TransportError,
)
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
        self.kind = kind  # http | connection | timeout | malformed | no_text | silent
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
# the way every request to a broken endpoint fails (each already after its full retries).
UNREACHABLE_AFTER = 3


@dataclass
class GiveUp:
    """When a run's workers stop sending: at a fatal failure, when the endpoint's health
    tripped (engine/budget.py), or once UNREACHABLE_AFTER requests in a row failed as a
    broken endpoint fails them. The reason goes to `abort`, which `drain_workers` watches."""

    abort: list[RequestFailed] = field(default_factory=list)
    unreachable_streak: int = 0

    def failed(self, exc: RequestFailed) -> bool:
        """Record a failed request; whether the worker must stop."""
        if exc.fatal or exc.kind == "silent":
            self.abort.append(exc)
            return True
        # What the endpoint does to every request (not what one prompt provokes, a 400 or
        # a reply without text): no connection, no answer in time, a 5xx or 429 storm, a
        # 200 that is not an answer (a login page, `{"error": …}`).
        if exc.kind in ("connection", "timeout", "malformed") or (
            exc.kind == "http" and exc.status in RETRYABLE_STATUS
        ):
            self.unreachable_streak += 1
            if self.unreachable_streak >= UNREACHABLE_AFTER:
                self.abort.append(exc)
                return True
        return False

    def answered(self) -> None:
        self.unreachable_streak = 0


async def drain_workers(
    workers: Sequence[asyncio.Future[None]],
    abort: Sequence[object],
    watch: asyncio.Future[None] | None = None,
) -> None:
    """Wait for `workers` to finish; once `abort` holds a reason, cancel the rest. A bug in
    a worker surfaces here rather than vanishing; none is left running on the way out.
    `watch`, when given, is a future that ends once it has put a reason in `abort` (the
    workers may all be waiting on answers then); it is cancelled on the way out."""
    workers = list(workers)
    try:
        while workers:
            waiting = [*workers, watch] if watch is not None and not watch.done() else workers
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for finished in done:
                finished.result()
            workers = [worker for worker in workers if not worker.done()]
            if abort:
                for worker in workers:
                    worker.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                workers = []
    finally:
        for worker in workers:
            worker.cancel()
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)


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
    api_key = job_environ().get(env_name)
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
        tls: TlsSettings | None = None,
    ) -> None:
        self.tls = tls
        self.url = url
        self.parallelism = parallelism
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        # Shared with the invocation's other clients of this endpoint (engine/budget.py).
        budget = budget_for(url, parallelism)
        self.limit = budget.limit
        self.health = budget.health
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
        self._transport = _open_transport(
            self.url, self._headers, self.parallelism, self.timeout_s, self.tls
        )
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
                try:
                    answer = accept(response, latency)
                except RequestFailed:
                    self.health.answered()  # an answer, if not one to score (a 400…)
                    raise
                self.health.answered()
                if response.status == 200:
                    self.limit.on_success()
                return answer, attempt + 1
            except _Retryable as exc:
                silent = self.health.attempt_failed(exc.reason)
                if silent is not None:
                    raise RequestFailed(silent, kind="silent", status=exc.status) from None
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
        if self.health.tripped is not None:  # the endpoint stopped answering: fail fast
            raise RequestFailed(self.health.tripped, kind="silent")
        if not self.limit.try_acquire():
            await self.limit.acquire()
        started = time.perf_counter()
        self.stats.requests += 1
        transport = self._transport
        assert transport is not None, "use EndpointClient as an async context manager"
        try:
            response = await transport.post(payload)
        except CertificateError as exc:  # every request would fail the same way
            raise RequestFailed(_describe(exc), kind="connection", fatal=True) from None
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


def _open_transport(
    url: str, headers: dict[str, str], limit: int, timeout_s: float, tls: TlsSettings | None = None
) -> Transport:
    """The lean transport, or aiohttp (imported only now) behind a proxy or when
    `EVALFLEET_HTTP=aiohttp` asks for it."""
    if tls is not None and tls.insecure:
        # At every run, not once at configuration: the setting must not be forgotten.
        shown = urlsplit(url)._replace(netloc=urlsplit(url).netloc.rpartition("@")[2], query="")
        print(
            f"warning: TLS certificate verification is off for {shown.geturl()} "
            "(target.api_endpoint.verify_tls: false)",
            file=sys.stderr,
            flush=True,
        )
    try:
        if os.environ.get("EVALFLEET_HTTP", "auto") != "aiohttp" and not proxy_applies(url):
            return FastTransport(url, headers, limit, timeout_s, tls)
        from evalfleet.engine._aiohttp import AiohttpTransport

        return AiohttpTransport(url, headers, limit, timeout_s, tls)
    except TransportError as exc:  # the CA bundle is not a PEM file of certificates
        raise ConfigError(f"endpoint.ca_bundle: {exc}") from None


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
    except (ValueError, RecursionError):  # not JSON, not UTF-8 (UnicodeDecodeError), too deep
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
    except (ValueError, RecursionError, AttributeError):  # not JSON, not UTF-8, too deep
        pass
    return _snippet(raw) or "(empty body)"


def _snippet(raw: bytes, limit: int = 120) -> str:
    """The start of a body as words a person can read: UTF-8, else Windows-1252 (what
    gateways' error pages are when not UTF-8); an HTML page as its text, not its markup."""
    window = raw[: max(limit, 4096)]
    try:
        text = window.decode("utf-8")
    except UnicodeDecodeError as exc:
        # Cut inside a character at the window's end, or not UTF-8 at all.
        cut = exc.start >= len(window) - 3 and len(window) < len(raw)
        text = window[: exc.start].decode() if cut else window.decode("cp1252", "replace")
    if _HTML.match(text):
        import html  # an HTML error page is rare: not at every start-up

        text = html.unescape(_TAG.sub(" ", _HIDDEN_HTML.sub(" ", text)))
    words = " ".join(text.split())
    return words[:limit] + ("…" if len(words) > limit or len(raw) > len(window) else "")


_HTML = re.compile(r"\s*<(?:!doctype\s+html|html|head|body|title)\b", re.IGNORECASE)
_HIDDEN_HTML = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")


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
    return " ".join(text.split())[:300]
