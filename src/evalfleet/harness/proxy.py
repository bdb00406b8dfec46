"""The adapter proxy: the model URL a framework harness is given, on loopback beside it.

A harness (NVIDIA's `nvidia-mmath`, `nvidia-bfcl`, ...) is handed `http://127.0.0.1:<port>`
as its model URL, the way nemo-evaluator's adapter server is: no path, because harnesses
append one or don't. Whatever the path, every POST goes to the one upstream URL, the job's
full endpoint URL (`http://host/v1/chat/completions`); POSTs under `/judge` go to the
judge's URL instead (`proxy.judge_url`). On the way, each request gets what the engine's
own requests get:

- the job's interceptors (system prompt, parameter edits; reasoning stripped from the
  answers). The judge's requests are left alone, as the engine leaves its judge's;
- the response cache (`engine/cache.py`), keyed by the body as sent and its *occurrence*:
  the n-th time this proxy sees a body is cached apart from the (n-1)-th. A harness that
  sends one body n times on purpose (repeats at temperature > 0) gets n answers, and a
  harness run again over the same cache, sending the same bodies again, gets every one
  answered before from the cache, without a single request upstream. A reply is stored the
  moment it arrives (committed at the end of that event-loop turn, as the engine does);
- the engine's client (`EndpointClient.send_raw`): retries of 429/5xx/connection
  failures/timeouts/a 200 that is not JSON with choices, with backoff, and the adaptive
  concurrency limit that halves on 429;
- one line in `log_path` (the job's samples.jsonl) per answered or failed request.

What the harness gets back: the upstream's 200 body as it came (re-encoded only when an
interceptor changed it); an error no retry mends (a 400 for a bad parameter) with the
upstream's own status and body, not cached; once the retries are spent, a 502 whose JSON
`error.message` is the reason in one line.

Two choices made here on purpose:

- `"stream": true` is sent upstream as a plain request and the answer comes back as a
  server-sent-event stream of one chunk and `[DONE]`. Evaluation only needs the finished
  text, and this keeps one shape for the cache, the retries and the log; refusing would
  break a harness whose client streams for no reason of ours.
- A `message.content` of null is returned as `""`, as nemo-evaluator's adapter does: the
  harnesses were written against it, and some call string methods on the content.

GETs (`/v1/models`) go to the upstream's origin plus the requested path, uncached and not
logged: they are not samples.

`AdapterProxy` runs on the caller's event loop (`async with`); `start_proxy_thread` runs
one on its own loop in a background thread, for a synchronous caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aiohttp import web

from evalfleet.engine.cache import ResponseCache, canonical_payload, request_key
from evalfleet.engine.client import EndpointClient, RequestFailed, RetryPolicy
from evalfleet.engine.transport import TlsSettings
from evalfleet.exceptions import StoreError

if TYPE_CHECKING:
    import aiohttp

    from evalfleet.engine.interceptors import Interceptors

__all__ = ["AdapterProxy", "ProxyThread", "Upstream", "UpstreamSpec", "start_proxy_thread"]

JUDGE_PREFIX = "/judge"
# Request bodies with long contexts or images run past aiohttp's 1 MiB default.
MAX_BODY_BYTES = 256 * 1024 * 1024

_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_JSON = "application/json"


@dataclass(frozen=True)
class Upstream:
    """Where one route's requests go: the full endpoint URL and how to talk to it."""

    url: str
    api_key: str | None = None
    parallelism: int = 16
    timeout_s: float = 300.0
    max_retries: int = 8
    backoff_s: float = 0.5  # the first retry's delay (jittered), doubled for each next one
    tls: TlsSettings | None = None  # the endpoint's CA bundle or verify_tls: false


UpstreamSpec = Upstream  # the name the brief used


class _Route:
    """One upstream (model or judge) with its client; `kind` names it in keys and logs."""

    def __init__(self, kind: str, upstream: Upstream, *, key_prefix: bytes) -> None:
        self.kind = kind
        self.upstream = upstream
        self.key_prefix = key_prefix
        self.client = EndpointClient(
            upstream.url,
            api_key=upstream.api_key,
            parallelism=upstream.parallelism,
            timeout_s=upstream.timeout_s,
            retry=RetryPolicy(max_retries=upstream.max_retries, base_s=upstream.backoff_s),
            tls=upstream.tls,
        )
        parts = urlsplit(upstream.url)
        self.origin = f"{parts.scheme}://{parts.netloc}"


class _Counters:
    __slots__ = (
        "answered",
        "cached",
        "errors",
        "forwarded",
        "judge_requests",
        "latencies",
        "received",
        "usage",
    )

    def __init__(self) -> None:
        self.received = 0  # POSTs with a body we could read
        self.answered = 0  # 200s returned, cached or not
        self.cached = 0  # of which from the cache
        self.forwarded = 0  # sent upstream (each counted once, whatever its retries)
        self.errors = 0  # anything else returned: the upstream's own error, or our 4xx/502
        self.judge_requests = 0
        self.usage: dict[str, int] = {}
        # Sorted in place when read: timsort merges the new tail into the sorted prefix.
        self.latencies: list[float] = []


class AdapterProxy:
    """`async with AdapterProxy(model, judge=..., cache=..., log_path=...) as proxy:` serves
    on `proxy.url` until the block ends."""

    def __init__(
        self,
        model: Upstream,
        *,
        judge: Upstream | None = None,
        cache: ResponseCache | str | Path,
        interceptors: Interceptors | None = None,
        log_path: str | Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._model = _Route("model", model, key_prefix=b"")
        self._judge = _Route("judge", judge, key_prefix=b"judge\x00") if judge else None
        self._cache_arg = cache
        self._cache: ResponseCache | None = None
        self._interceptors = interceptors
        self._reasoning = interceptors is not None and interceptors.settings.reasoning is not None
        self._log_path = Path(log_path) if log_path is not None else None
        self._log: Any = None
        self._host = host
        self._port = port
        self._stored: dict[str, dict[str, Any]] = {}
        self._seen: dict[str, int] = {}
        self._quoted_paths: dict[str, str] = {}
        self._counts = _Counters()
        self._cache_error: str | None = None
        self._stack = contextlib.AsyncExitStack()
        self._session: aiohttp.ClientSession | None = None
        self.url = ""
        self.judge_url: str | None = None

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AdapterProxy:
        stack = contextlib.AsyncExitStack()
        try:
            if isinstance(self._cache_arg, ResponseCache):
                self._cache = self._cache_arg
                stack.callback(self._cache.flush)  # the caller closes it
            else:
                self._cache = ResponseCache(self._cache_arg)
                stack.callback(self._cache.close)
            self._stored = self._cache.load()
            if self._log_path is not None:
                self._log_path.parent.mkdir(parents=True, exist_ok=True)
                # Unbuffered: each line is one write(2), so a SIGKILL keeps every line logged.
                self._log = stack.enter_context(open(self._log_path, "ab", buffering=0))  # noqa: SIM115
            for route in self._routes():
                await stack.enter_async_context(route.client)
            stack.push_async_callback(self._close_session)
            self._server = web.Server(
                self._handle,
                request_factory=self._make_request,
                access_log=None,
                keepalive_timeout=600,
            )
            loop = asyncio.get_running_loop()
            self._listener = await loop.create_server(self._server, self._host, self._port)
            stack.push_async_callback(self._close_server, self._server, self._listener)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        port = self._listener.sockets[0].getsockname()[1]
        self.url = f"http://{self._host}:{port}"
        self.judge_url = f"{self.url}{JUDGE_PREFIX}" if self._judge is not None else None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._stack.aclose()

    @staticmethod
    async def _close_server(server: web.Server, listener: asyncio.AbstractServer) -> None:
        """Stop listening, let requests in flight finish (for a second at most)."""
        listener.close()
        server.pre_shutdown()
        await server.shutdown(1.0)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(listener.wait_closed(), 1.0)

    async def _close_session(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _routes(self) -> list[_Route]:
        return [self._model] if self._judge is None else [self._model, self._judge]

    def _make_request(
        self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any
    ) -> web.BaseRequest:
        """aiohttp's own request, allowed a larger body than its 1 MiB default."""
        loop = asyncio.get_running_loop()
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=MAX_BODY_BYTES
        )

    # ------------------------------------------------------------------ stats

    def stats(self) -> dict[str, Any]:
        """Counts since the proxy started; `usage` sums every answer returned (cached ones
        too: the job's usage), `latency_s` is over the requests sent upstream."""
        counts = self._counts
        retries = throttled = 0
        for route in self._routes():
            retries += route.client.stats.retries
            throttled += route.client.stats.throttled
        latencies = counts.latencies
        latencies.sort()
        return {
            "received": counts.received,
            "answered": counts.answered,
            "cached": counts.cached,
            "forwarded": counts.forwarded,
            "errors": counts.errors,
            "judge_requests": counts.judge_requests,
            "retries": retries,
            "throttled": throttled,
            "usage": dict(counts.usage),
            "latency_s": {"p50": _percentile(latencies, 0.5), "p95": _percentile(latencies, 0.95)},
            "cache_error": self._cache_error,
        }

    # ------------------------------------------------------------------ requests

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        judged = path == JUDGE_PREFIX or path.startswith(JUDGE_PREFIX + "/")
        route = self._judge if judged else self._model
        if route is None:
            return _error(404, f"no judge endpoint is configured for {path}")
        if request.method == "GET":
            return await self._forward_get(
                request, route, path[len(JUDGE_PREFIX) :] if judged else path
            )
        if request.method != "POST":
            return _error(405, f"{request.method} is not supported; POST a request body")
        raw = await request.read()
        counts = self._counts
        counts.received += 1
        if judged:
            counts.judge_requests += 1
        try:
            body = json.loads(raw)
        except ValueError:
            return self._refuse(route, path, 400, "the request body is not JSON")
        if not isinstance(body, dict):
            return self._refuse(route, path, 400, "the request body is not a JSON object")
        streamed = False
        edited = False
        if "stream" in body:
            streamed = bool(body.pop("stream"))
            body.pop("stream_options", None)
            edited = True
        if self._interceptors is not None and not judged:
            body = self._interceptors.apply_request(body)
            edited = True
        payload = canonical_payload(body)
        key = self._key(route.key_prefix + payload)

        stored = self._stored.pop(key, None)
        if stored is not None:
            counts.answered += 1
            counts.cached += 1
            out, final, usage = self._finish(stored, None)
            self._add_usage(usage)
            self._write_log(route, path, 200, payload, out, 0.0, 0, True, usage, None)
            return _answer(out, final, streamed)

        counts.forwarded += 1
        started = time.perf_counter()
        try:
            reply = await route.client.send_raw(payload if edited else raw)
        except RequestFailed as exc:
            latency = time.perf_counter() - started
            counts.errors += 1
            error = _error_body(502, f"{route.kind} endpoint: {exc.reason}")
            self._write_log(route, path, 502, payload, None, latency, None, False, None, exc.reason)
            return web.Response(status=502, body=error, content_type=_JSON)
        latency = time.perf_counter() - started
        counts.latencies.append(latency)
        data = reply.data
        if data is None:  # an error no retry mends: the harness gets the upstream's own
            counts.errors += 1
            parsed = _json_or_none(reply.body)
            logged = parsed if parsed is not None else reply.body.decode("utf-8", "replace")
            self._write_log(
                route, path, reply.status, payload, logged, latency, reply.attempts,
                False, None, reply.reason,
            )  # fmt: skip
            return web.Response(
                status=reply.status,
                body=reply.body,
                content_type=_JSON if parsed is not None else "text/plain",
            )
        self._store(key, data)
        counts.answered += 1
        out, final, usage = self._finish(data, reply.body)
        self._add_usage(usage)
        self._write_log(route, path, 200, payload, out, latency, reply.attempts, False, usage, None)
        return _answer(out, final, streamed)

    def _key(self, payload: bytes) -> str:
        """The cache key of this body's next occurrence."""
        first = request_key(payload, 0)
        seen = self._seen.get(first, 0)
        self._seen[first] = seen + 1
        return first if seen == 0 else request_key(payload, seen)

    def _store(self, key: str, data: dict[str, Any]) -> None:
        assert self._cache is not None
        try:
            self._cache.put_soon(key, data)
        except StoreError as exc:
            # The harness still gets its answer; the run reads the failure from stats().
            self._cache_error = str(exc)

    def _finish(self, data: dict[str, Any], raw: bytes | None) -> tuple[bytes, dict[str, Any], Any]:
        """The body the harness gets (reasoning stripped, null content made ""), as bytes
        and as JSON, and the answer's usage. `data` is never changed: it may still be
        waiting to be stored."""
        choices = data.get("choices")
        edited: list[Any] | None = None
        if isinstance(choices, list):
            for index, choice in enumerate(choices):
                message = choice.get("message") if isinstance(choice, dict) else None
                if not isinstance(message, dict):
                    continue
                changed = self._strip(message)
                if changed is not None:
                    if edited is None:
                        edited = list(choices)
                    edited[index] = {**choice, "message": changed}
        usage = data.get("usage")
        if edited is not None:
            data = {**data, "choices": edited}
            return _COMPACT(data).encode(), data, usage
        if raw is None:
            return _COMPACT(data).encode(), data, usage
        return raw, data, usage

    def _strip(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The message as the harness gets it, or None when unchanged."""
        content = message.get("content")
        if not self._reasoning:
            return {**message, "content": ""} if content is None and "content" in message else None
        assert self._interceptors is not None
        text = content if isinstance(content, str) else ""
        given = message.get("reasoning_content")
        answer, reasoning, _ = self._interceptors.apply_response(
            text, given if isinstance(given, str) else None
        )
        if answer == content and reasoning == given:
            return None
        changed = {**message, "content": answer}
        if reasoning is not None:
            changed["reasoning_content"] = reasoning
        return changed

    def _add_usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        sums = self._counts.usage
        for name, count in usage.items():
            if type(count) is int:
                sums[name] = sums.get(name, 0) + count

    def _refuse(self, route: _Route, path: str, status: int, reason: str) -> web.Response:
        self._counts.errors += 1
        self._write_log(route, path, status, None, None, 0.0, None, False, None, reason)
        return _error(status, reason)

    def _write_log(
        self,
        route: _Route,
        path: str,
        status: int,
        request: bytes | None,
        response: bytes | Any,
        latency: float,
        attempts: int | None,
        cached: bool,
        usage: Any,
        error: str | None,
    ) -> None:
        """One JSON line per request: the request as sent and the response as returned,
        spliced in as the JSON they already are rather than decoded and encoded again."""
        log = self._log
        if log is None:
            return
        # Formatted rather than encoded: a JSON encoder costs ~8 µs a line here. Only the
        # strings that may need escaping go through it (the path once, then remembered).
        quoted = self._quoted_paths.get(path)
        if quoted is None:
            quoted = _COMPACT(path)
            if len(self._quoted_paths) < 256:
                self._quoted_paths[path] = quoted
        head = (
            f'{{"time":{time.time():.3f},"kind":"{route.kind}","path":{quoted},'
            f'"status":{status},"cached":{"true" if cached else "false"},'
            f'"latency_s":{latency:.4f},"attempts":{"null" if attempts is None else attempts},'
            f'"usage":{"null" if usage is None else _COMPACT(usage)},'
            f'"error":{"null" if error is None else _COMPACT(error)},"request":'
        ).encode()
        if isinstance(response, bytes):
            # Whitespace between JSON tokens may be a newline; inside strings it is escaped.
            response = response.replace(b"\n", b" ").replace(b"\r", b" ")
        else:
            response = _COMPACT(response).encode()
        log.write(b"".join((head, request or b"null", b',"response":', response, b"}\n")))

    async def _forward_get(
        self, request: web.BaseRequest, route: _Route, path: str
    ) -> web.Response:
        import aiohttp

        if self._session is None:  # GETs are rare: no session until one comes
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._model.upstream.timeout_s), trust_env=True
            )
        headers = {"Accept": request.headers.get("Accept", _JSON)}
        if route.upstream.api_key:
            headers["Authorization"] = f"Bearer {route.upstream.api_key}"
        target = (
            route.origin
            + (path or "/")
            + (f"?{request.query_string}" if request.query_string else "")
        )
        try:
            async with self._session.get(target, headers=headers) as reply:
                body = await reply.read()
                content_type = reply.headers.get("Content-Type", _JSON)
                return web.Response(
                    status=reply.status, body=body, headers={"Content-Type": content_type}
                )
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return _error(
                502, f"{route.kind} endpoint: GET {target}: {str(exc) or type(exc).__name__}"
            )


def _answer(body: bytes, data: dict[str, Any], streamed: bool) -> web.Response:
    if not streamed:
        return web.Response(body=body, content_type=_JSON)
    return web.Response(body=_as_event_stream(data), content_type="text/event-stream")


def _as_event_stream(data: dict[str, Any]) -> bytes:
    """A whole answer as the one chunk of a server-sent-event stream, then `[DONE]`."""
    chunk = dict(data)
    choices = []
    for choice in data.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):  # completions: the chunk's choice is the same
            choices.append(choice)
            continue
        delta = {k: v for k, v in message.items() if v is not None}
        if isinstance(delta.get("tool_calls"), list):  # a streamed tool call carries its index
            delta["tool_calls"] = [
                {"index": i, **call} if isinstance(call, dict) else call
                for i, call in enumerate(delta["tool_calls"])
            ]
        streamed = {k: v for k, v in choice.items() if k != "message"}
        streamed["delta"] = delta
        choices.append(streamed)
        chunk["object"] = "chat.completion.chunk"
    chunk["choices"] = choices
    return b"data: " + _COMPACT(chunk).encode() + b"\n\ndata: [DONE]\n\n"


def _error_body(status: int, message: str) -> bytes:
    text = " ".join(message.split())
    return _COMPACT(
        {"error": {"message": text, "type": "evalfleet_proxy_error", "code": status}}
    ).encode()


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, body=_error_body(status, message), content_type=_JSON)


def _json_or_none(raw: bytes) -> Any:
    """The body as JSON; None when it is not JSON (or is JSON's null)."""
    try:
        return json.loads(raw)
    except ValueError:
        return None


def _percentile(ordered: list[float], q: float) -> float | None:
    if not ordered:
        return None
    position = (len(ordered) - 1) * q
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), 6)


# --------------------------------------------------------------------------- thread


class ProxyThread:
    """An `AdapterProxy` serving from a background thread on its own event loop, for a
    synchronous caller; `stop()` (or leaving `with`) shuts it down."""

    def __init__(self, factory: Callable[[], AdapterProxy]) -> None:
        self._factory = factory
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._proxy: AdapterProxy | None = None
        self._final: dict[str, Any] | None = None
        self.url = ""
        self.judge_url: str | None = None
        self._thread = threading.Thread(target=self._run, name="evalfleet-proxy", daemon=True)

    def start(self, timeout: float = 30.0) -> ProxyThread:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the adapter proxy did not start within {timeout:g} s")
        if self._failure is not None:
            raise self._failure
        return self

    def _run(self) -> None:
        from evalfleet.engine.loop import run

        try:
            run(self._serve())
        except BaseException as exc:  # reported to start(), or lost with the thread
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with self._factory() as proxy:
            self._proxy = proxy
            self.url, self.judge_url = proxy.url, proxy.judge_url
            self._ready.set()
            await self._stopping.wait()
            self._final = proxy.stats()

    def stats(self) -> dict[str, Any]:
        """The proxy's `stats()`, taken on its own loop; the final figures once stopped."""
        loop, proxy = self._loop, self._proxy
        if self._final is not None or loop is None or proxy is None or not loop.is_running():
            return dict(self._final or {})

        async def take() -> dict[str, Any]:
            return proxy.stats()

        try:
            return asyncio.run_coroutine_threadsafe(take(), loop).result(timeout=30)
        except RuntimeError:  # the loop closed in between
            return dict(self._final or {})

    def stop(self, timeout: float = 30.0) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # already closed
                loop.call_soon_threadsafe(stopping.set)
        self._thread.join(timeout)

    def __enter__(self) -> ProxyThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_proxy_thread(
    model: Upstream,
    *,
    judge: Upstream | None = None,
    cache: str | Path,
    interceptors: Interceptors | None = None,
    log_path: str | Path | None = None,
    timeout: float = 30.0,
) -> ProxyThread:
    """Start an adapter proxy in a background thread; returns once it listens. `cache` is
    a path: a SQLite connection belongs to the thread that opened it."""
    return ProxyThread(
        lambda: AdapterProxy(
            model, judge=judge, cache=cache, interceptors=interceptors, log_path=log_path
        )
    ).start(timeout)
