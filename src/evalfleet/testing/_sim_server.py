"""The endpoint simulator's request handling: auth, validation, faults, capacity, stats.

One `Endpoint` per application holds the live settings and counters; its handlers are plain
coroutines returning a `Reply` (no middleware, no per-request logging) because the simulator
must stay far cheaper per request than the client that drives it. `serve` runs them on the
lean server of `_sim_wire`; `build_app` on aiohttp's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import math
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from . import _sim_openai as oa
from ._sim_wire import Reply

if TYPE_CHECKING:
    from .endpoint import SimulatorSettings

_JSON = "application/json"
_OK_HEALTH = b'{"status": "ok"}'
_UNAUTHORIZED = oa.error_body(
    "Incorrect API key provided. You can find your API key at the simulator's command line.",
    "invalid_request_error",
    None,
    "invalid_api_key",
)
_RATE_LIMITED = oa.error_body(
    "Rate limit reached for requests (simulated). Please try again later.",
    "requests",
    None,
    "rate_limit_exceeded",
)
_SERVER_ERROR = oa.error_body(
    "The server had an error while processing your request. Sorry about that! (simulated)",
    "server_error",
)


def key_hash(key: str) -> str:
    """The `/stats` `by_key` name of a lookup key: its UTF-8 sha256, in hex."""
    return hashlib.sha256(key.encode()).hexdigest()


def load_answers(path: str) -> tuple[dict[str, str], dict[str, float]]:
    """Read an oracle file: JSONL of `{"prompt": …, "response": …}` and/or
    `{"prompt": …, "token_logprob": …}`; a later line wins.

    Returns (responses, token logprobs), both keyed by prompt. `token_logprob` is what every
    token of that prompt scores when a completions request echoes it with logprobs (the
    default is `LOGPROB`, -0.5): 0.0 makes that prompt the likeliest of its rivals.
    """
    answers: dict[str, str] = {}
    token_logprobs: dict[str, float] = {}
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                prompt = row["prompt"]
                if "response" not in row and "token_logprob" not in row:
                    raise KeyError("response")
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(
                    f"{path}:{lineno}: expected a JSON object with 'prompt' and 'response' "
                    f"or 'token_logprob' ({exc})"
                ) from None
            response, logprob = row.get("response"), row.get("token_logprob")
            if not isinstance(prompt, str) or not isinstance(response, (str, type(None))):
                raise ValueError(f"{path}:{lineno}: 'prompt' and 'response' must be strings")
            if logprob is not None and (
                isinstance(logprob, bool) or not isinstance(logprob, (int, float)) or logprob > 0
            ):
                raise ValueError(f"{path}:{lineno}: 'token_logprob' must be a number <= 0")
            if response is not None:
                answers[prompt] = response
            if logprob is not None:
                token_logprobs[prompt] = float(logprob)
    return answers, token_logprobs


class Gate:
    """A FIFO semaphore whose size can change while requests wait (None = unlimited)."""

    __slots__ = ("active", "capacity", "waiters")

    def __init__(self, capacity: int | None) -> None:
        self.capacity = capacity
        self.active = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    def try_acquire(self) -> bool:
        cap = self.capacity
        if cap is None or (self.active < cap and not self.waiters):
            self.active += 1
            return True
        return False

    async def acquire(self) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        try:
            await fut  # the releaser counted us in before waking us
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()
            else:
                self.waiters.remove(fut)
            raise

    def release(self) -> None:
        self.active -= 1
        if self.waiters:
            self._wake()

    def resize(self, capacity: int | None) -> None:
        self.capacity = capacity
        self._wake()

    def _wake(self) -> None:
        waiters = self.waiters
        while waiters and (self.capacity is None or self.active < self.capacity):
            fut = waiters.popleft()
            if not fut.done():
                self.active += 1
                fut.set_result(None)


class Stats:
    """The counters `/stats` reports (one object for the endpoint's life: handlers hold it)."""

    __slots__ = (
        "by_key",
        "by_status",
        "cancelled",
        "completed",
        "faults",
        "first_request_at",
        "in_flight",
        "last_answer_at",
        "max_in_flight",
        "requests",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        self.reset()

    def reset(self) -> None:
        """Zero every counter; `in_flight` is live state, so it stays and seeds the maximum."""
        self.requests = 0
        self.completed = 0
        self.cancelled = 0
        self.by_status: dict[int, int] = {}
        self.faults: dict[str, int] = {}
        self.max_in_flight = self.in_flight
        self.by_key: dict[str, int] = {}
        # Wall-clock times (time.time()): when the first request came, when the last 200
        # went out, so that a benchmark can tell a client's start-up from its serving.
        self.first_request_at: float | None = None
        self.last_answer_at: float | None = None

    def as_dict(self, queued: int) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "completed": self.completed,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "faults": dict(self.faults),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "queued": queued,
            "cancelled": self.cancelled,
            "by_key": dict(self.by_key),
            "first_request_at": self.first_request_at,
            "last_answer_at": self.last_answer_at,
        }


class SimRequest(Protocol):
    """What handlers use of a request: an aiohttp request and a `WireRequest` both have it."""

    @property
    def method(self) -> str: ...
    @property
    def raw_path(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def headers(self) -> Mapping[str, str]: ...
    @property
    def transport(self) -> asyncio.Transport | None: ...
    async def read(self) -> bytes: ...


Handler = Callable[[SimRequest], Awaitable[Reply]]
"""Takes an aiohttp request or a `WireRequest`: both have the attributes handlers use."""
Render = Callable[[bool], bytes]
"""Builds a 200 body; the argument asks for the `empty` fault's body (`choices: []`)."""


def _response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, body, headers)


def as_aiohttp(handler: Handler) -> Callable[[web.BaseRequest], Awaitable[web.Response]]:
    """A simulator handler as an aiohttp handler (for `build_app`)."""

    async def aiohttp_handler(request: web.BaseRequest) -> web.Response:
        reply = await handler(request)
        return web.Response(
            status=reply.status, body=reply.body, content_type=_JSON, headers=reply.headers
        )

    return aiohttp_handler


class Endpoint:
    """Live settings, counters and the request handlers of one simulator."""

    def __init__(self, settings: SimulatorSettings) -> None:
        self.stats = Stats()
        self.gate = Gate(None)
        self.started = int(time.time())
        self._seq = 0
        self.answers: dict[str, str] = {}
        self.token_logprobs: dict[str, float] = {}
        self.apply(settings, reseed=True)
        self._routes = self.routes()

    # ------------------------------------------------------------------ settings

    def apply(self, settings: SimulatorSettings, *, reseed: bool) -> None:
        """Switch to `settings` (the oracle file is re-read when its path changes)."""
        old = getattr(self, "settings", None)
        if settings.answers is None:
            answers: dict[str, str] = {}
            token_logprobs: dict[str, float] = {}
        elif old is None or old.answers != settings.answers:
            answers, token_logprobs = load_answers(settings.answers)
        else:
            answers, token_logprobs = self.answers, self.token_logprobs
        self.settings = settings
        self.answers = answers
        self.token_logprobs = token_logprobs
        key = settings.require_api_key
        self.auth = None if key is None else f"Bearer {key}"
        self.chat_head = oa.envelope_head("chat.completion", settings.model)
        self.text_head = oa.envelope_head("text_completion", settings.model)
        ra = settings.retry_after
        self.retry_headers = {"Retry-After": str(int(ra)) if ra == int(ra) else str(ra)}
        self.reasoning = settings.reasoning or settings.reasoning_field
        self.gate.resize(settings.capacity)
        if reseed:
            self.fault_rng = random.Random(settings.seed)
            self.jitter_rng = random.Random(settings.seed)

    # ------------------------------------------------------------------ plumbing

    def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> Reply:
        by_status = self.stats.by_status
        by_status[status] = by_status.get(status, 0) + 1
        if status == 200:
            self.stats.completed += 1
            self.stats.last_answer_at = time.time()
        return _response(status, body, headers)

    def _count_key(self, key: str) -> None:
        by_key = self.stats.by_key
        h = key_hash(key)
        by_key[h] = by_key.get(h, 0) + 1

    def _next_id(self, prefix: str) -> str:
        self._seq += 1
        return f"{prefix}-sim{self._seq:012x}"

    def _roll(self) -> str | None:
        s = self.settings
        if s.fault_rate > 0 and s.faults and self.fault_rng.random() < s.fault_rate:
            return self.fault_rng.choice(s.faults)
        return None

    async def _handle(
        self, request: SimRequest, prepare: Callable[[dict[str, Any]], Render]
    ) -> Reply:
        stats = self.stats
        stats.requests += 1
        if stats.first_request_at is None:
            stats.first_request_at = time.time()
        if self.auth is not None and request.headers.get("Authorization") != self.auth:
            return self._send(401, _UNAUTHORIZED)
        try:
            payload = json.loads(await request.read())
        except ValueError:
            return self._send(
                400,
                oa.error_body(
                    "We could not parse the JSON body of your request. (HINT: This likely means "
                    "you aren't using your HTTP library correctly.)",
                    "invalid_request_error",
                ),
            )
        try:
            if not isinstance(payload, dict):
                raise oa.RequestError("The request body must be a JSON object.")
            model = payload.get("model")
            if model is None:
                raise oa.RequestError(
                    "Missing required parameter: 'model'.", "model", "missing_required_parameter"
                )
            if model != self.settings.model:
                return self._send(
                    404,
                    oa.error_body(
                        f"The model `{model}` does not exist.",
                        "invalid_request_error",
                        None,
                        "model_not_found",
                    ),
                )
            render = prepare(payload)
        except oa.RequestError as exc:
            return self._send(
                400, oa.error_body(exc.message, "invalid_request_error", exc.param, exc.code)
            )

        fault = self._roll()
        if fault is not None:
            stats.faults[fault] = stats.faults.get(fault, 0) + 1
            if fault == "429":
                return self._send(429, _RATE_LIMITED, self.retry_headers)
        gate = self.gate
        if not gate.try_acquire():
            try:
                await gate.acquire()
            except asyncio.CancelledError:
                stats.cancelled += 1  # gave up while queued
                raise
        stats.in_flight += 1
        if stats.in_flight > stats.max_in_flight:
            stats.max_in_flight = stats.in_flight
        try:
            s = self.settings
            delay = s.latency
            if s.latency_sigma:
                delay = self.jitter_rng.lognormvariate(math.log(delay), s.latency_sigma) if delay else 0.0
            elif s.latency_jitter:
                delay = max(
                    0.0, delay + self.jitter_rng.uniform(-s.latency_jitter, s.latency_jitter)
                )
            if delay > 0:
                await asyncio.sleep(delay)
            if fault is None:
                return self._send(200, render(False))
            return await self._fault(fault, request, render)
        except asyncio.CancelledError:
            stats.cancelled += 1
            raise
        finally:
            stats.in_flight -= 1
            gate.release()

    async def _fault(self, fault: str, request: SimRequest, render: Render) -> Reply:
        if fault == "500":
            return self._send(500, _SERVER_ERROR)
        if fault == "malformed":
            return self._send(200, oa.MALFORMED_BODY)
        if fault == "empty":
            return self._send(200, render(True))
        if fault == "null_content":
            return self._send(200, oa.NULL_CONTENT_BODY)
        if fault == "timeout":
            await asyncio.sleep(self.settings.hang_seconds)
            return self._send(200, render(False))
        # drop: no status line at all; writing the response then fails quietly in aiohttp
        transport = request.transport
        if transport is not None:
            transport.abort()
        return Reply(204, b"")

    # ------------------------------------------------------------------ OpenAI routes

    def _answer(self, key: str) -> str:
        """The oracle's answer to `key`, else the configured default, else the echo."""
        answer = self.answers.get(key)
        if answer is not None:
            return answer
        fallback = self.settings.default_answer
        return oa.default_answer(key) if fallback is None else fallback

    def _prepare_chat(self, payload: dict[str, Any]) -> Render:
        key, prompt_tokens = oa.parse_chat(payload)
        sampling = oa.parse_sampling(payload)
        want_logprobs = bool(payload.get("logprobs"))
        top_k = 0
        if want_logprobs:
            top_k = oa.parse_top_logprobs(payload)
        self._count_key(key)
        text, finish_reason = oa.finish(self._answer(key), sampling)
        reasoning = None
        if self.reasoning:
            if self.settings.reasoning_field:
                reasoning = oa.REASONING_TEXT
            else:
                text = oa.THINK_PREFIX + text
        n = sampling.n
        per_choice = len(text.split()) + (0 if reasoning is None else len(reasoning.split()))
        rid = self._next_id("chatcmpl")
        head = self.chat_head

        def render(empty: bool) -> bytes:
            if empty:
                return oa.envelope(head, rid, int(time.time()), "", oa.usage_json(prompt_tokens, 0))
            logprobs = oa.chat_logprobs(text, top_k) if want_logprobs else "null"
            choices = ",".join(
                oa.chat_choice(i, text, finish_reason, reasoning, logprobs) for i in range(n)
            )
            usage = oa.usage_json(prompt_tokens, n * per_choice)
            return oa.envelope(head, rid, int(time.time()), choices, usage)

        return render

    def _prepare_completion(self, payload: dict[str, Any]) -> Render:
        prompts = oa.parse_prompts(payload)
        sampling = oa.parse_sampling(payload)
        logprobs_k = oa.parse_logprobs(payload)
        echo = bool(payload.get("echo"))
        if echo and self.settings.refuse_echo:
            raise oa.RequestError(oa.ECHO_REFUSED, "echo")
        n = sampling.n
        choices: list[str] = []
        prompt_tokens = completion_tokens = 0
        for p_index, prompt in enumerate(prompts):
            self._count_key(prompt)
            text, finish_reason = oa.finish(self._answer(prompt), sampling)
            prompt_tokens += len(prompt.split())
            completion_tokens += n * len(text.split())
            logprobs = (
                "null"
                if logprobs_k is None
                else oa.legacy_logprobs(
                    prompt if echo else None,
                    text,
                    logprobs_k,
                    self.token_logprobs.get(prompt, oa.LOGPROB),
                )
            )
            shown = prompt + text if echo else text
            choices.extend(
                oa.completion_choice(p_index * n + i, shown, finish_reason, logprobs)
                for i in range(n)
            )
        rid = self._next_id("cmpl")
        head = self.text_head
        body = ",".join(choices)
        usage = oa.usage_json(prompt_tokens, completion_tokens)

        def render(empty: bool) -> bytes:
            return oa.envelope(head, rid, int(time.time()), "" if empty else body, usage)

        return render

    async def models(self, request: SimRequest) -> Reply:
        if self.auth is not None and request.headers.get("Authorization") != self.auth:
            return _response(401, _UNAUTHORIZED)
        model = {
            "id": self.settings.model,
            "object": "model",
            "created": self.started,
            "owned_by": "evalfleet-simulator",
        }
        return _response(200, json.dumps({"object": "list", "data": [model]}).encode())

    # ------------------------------------------------------------------ routing

    def routes(self) -> dict[tuple[str, str], Handler]:
        """(method, path) → handler, for `build_app` and for `dispatch`."""
        return {
            # partials, not wrapper methods: one coroutine frame less on the hot path
            ("POST", "/v1/chat/completions"): partial(self._handle, prepare=self._prepare_chat),
            ("POST", "/v1/completions"): partial(self._handle, prepare=self._prepare_completion),
            ("GET", "/v1/models"): self.models,
            ("GET", "/health"): self.health,
            ("GET", "/stats"): self.get_stats,
            ("POST", "/stats/reset"): self.reset_stats,
            ("GET", "/control"): self.get_control,
            ("POST", "/control"): self.post_control,
        }

    def dispatch(self, request: SimRequest) -> Awaitable[Reply]:
        """The low-level server's handler: one dict lookup instead of aiohttp's router."""
        path = request.raw_path  # the request line's target: no URL object built
        if "?" in path:
            path = path.partition("?")[0]
        handler = self._routes.get((request.method, path))
        if handler is None:
            return self._not_found(request)
        return handler(request)

    async def _not_found(self, request: SimRequest) -> Reply:
        known = {path for _, path in self._routes}
        status = 405 if request.path in known else 404
        message = f"{request.method} {request.path} is not a simulator route"
        return _response(status, oa.error_body(message, "invalid_request_error"))

    # ------------------------------------------------------------------ control routes

    async def health(self, request: SimRequest) -> Reply:
        return _response(200, _OK_HEALTH)

    async def get_stats(self, request: SimRequest) -> Reply:
        return _response(200, json.dumps(self.stats.as_dict(len(self.gate.waiters))).encode())

    async def reset_stats(self, request: SimRequest) -> Reply:
        self.stats.reset()
        return _response(200, json.dumps(self.stats.as_dict(len(self.gate.waiters))).encode())

    def settings_body(self) -> bytes:
        data = dataclasses.asdict(self.settings)
        data["faults"] = list(self.settings.faults)
        return json.dumps(data).encode()

    async def get_control(self, request: SimRequest) -> Reply:
        return _response(200, self.settings_body())

    async def post_control(self, request: SimRequest) -> Reply:
        try:
            changes = json.loads(await request.read() or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object of settings")
            known = {f.name for f in dataclasses.fields(self.settings)}
            unknown = sorted(set(changes) - known)
            if unknown:
                raise ValueError(f"unknown setting(s): {', '.join(unknown)}")
            self.apply(dataclasses.replace(self.settings, **changes), reseed="seed" in changes)
        except (ValueError, TypeError, OSError) as exc:
            return _response(400, oa.error_body(str(exc), "invalid_request_error"))
        return _response(200, self.settings_body())
