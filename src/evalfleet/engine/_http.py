"""A lean HTTP/1.1 keep-alive client for the engine's one job: POST JSON, read JSON.

Why not only aiohttp: on this project's 2-core reference machine aiohttp costs ~200 µs of
CPU per request, which caps one process at ~4,000 requests/s and leaves an endpoint with
1,024 slots a third idle. This transport costs ~55 µs. It speaks exactly what OpenAI-
compatible servers answer to a non-streaming POST (Content-Length or chunked bodies,
keep-alive or `Connection: close`, HTTP or HTTPS) and nothing else; the engine falls back
to aiohttp whenever a proxy applies to the endpoint.

Errors are `TransportError` (the connection failed or broke) or `asyncio.TimeoutError`
(the contract every transport keeps: `engine/transport.py`).
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit
from urllib.request import getproxies, proxy_bypass

from evalfleet.engine.limits import AdaptiveLimit

# Defined once in transport.py; still importable from here.
from evalfleet.engine.transport import Response, TransportError, with_url_credentials

__all__ = ["FastTransport", "Response", "TransportError", "proxy_applies"]

_MAX_HEADER_BYTES = 64 * 1024


def proxy_applies(url: str) -> bool:
    """Whether the environment routes `url` through a proxy (then aiohttp handles it)."""
    parts = urlsplit(url)
    proxies = getproxies()
    if parts.scheme not in proxies:
        return False
    return not proxy_bypass(parts.hostname or "")


class _Connection(asyncio.Protocol):
    """One socket; at most one request in flight (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            # A server may answer and close at once: whatever is complete still counts.
            response = self._parse(final=True)
            if response is not None:
                waiter.set_result(response)
            else:
                reason = str(exc) if exc else "the server closed the connection"
                waiter.set_exception(TransportError(reason))
        self.waiter = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        try:
            response = self._parse(final=False)
        except TransportError as exc:
            self.waiter = None
            waiter.set_exception(exc)
            self.abort()
            return
        if response is not None:
            self.waiter = None
            waiter.set_result(response)

    def _parse(self, final: bool) -> Response | None:
        buffer = self.buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > _MAX_HEADER_BYTES:
                raise TransportError("response headers too large")
            return None
        head = bytes(buffer[:head_end]).decode("latin-1")
        status_line, _, header_text = head.partition("\r\n")
        try:
            status = int(status_line.split(" ", 2)[1])
        except (IndexError, ValueError):
            raise TransportError(f"not an HTTP response: {status_line[:80]!r}") from None
        length: int | None = None
        chunked = False
        retry_after = None
        connection = ""
        for line in header_text.split("\r\n"):
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value.strip())
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "retry-after":
                retry_after = value.strip()
            elif name == "connection":
                connection = value.strip().lower()
        body_start = head_end + 4
        if chunked:
            parsed = _dechunk(buffer, body_start)
            if parsed is None:
                return None
            body, end = parsed
        elif length is not None:
            end = body_start + length
            if len(buffer) < end:
                return None
            body = bytes(buffer[body_start:end])
        else:  # no length: the body runs until the server closes the connection
            if not final:
                return None
            end = len(buffer)
            body = bytes(buffer[body_start:end])
            connection = "close"
        del buffer[:end]
        self.keep_alive = connection != "close" and status_line.startswith("HTTP/1.1")
        return Response(status, body, retry_after)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _expire(waiter: asyncio.Future[Response]) -> None:
    if not waiter.done():
        waiter.set_exception(asyncio.TimeoutError())


def _dechunk(buffer: bytearray, position: int) -> tuple[bytes, int] | None:
    parts: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[position:line_end]).split(b";", 1)[0], 16)
        except ValueError:
            raise TransportError("malformed chunked body") from None
        data_start = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if trailer_end >= 0:
                return b"".join(parts), trailer_end + 4
            if buffer[data_start : data_start + 2] == b"\r\n":
                return b"".join(parts), data_start + 2
            return None
        if len(buffer) < data_start + size + 2:
            return None
        parts.append(bytes(buffer[data_start : data_start + size]))
        position = data_start + size + 2


class FastTransport:
    """POSTs to one URL over a pool of at most `limit` keep-alive connections."""

    name = "evalfleet"

    def __init__(self, url: str, headers: dict[str, str], limit: int, timeout_s: float) -> None:
        url, headers = with_url_credentials(url, headers)
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported URL {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = (
            ssl.create_default_context() if parts.scheme == "https" else None
        )
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        host_header = parts.netloc.rsplit("@", 1)[-1]
        lines = [f"POST {target} HTTP/1.1", f"Host: {host_header}", "Connection: keep-alive"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self.timeout_s = timeout_s
        self._idle: list[_Connection] = []
        self._slots = AdaptiveLimit(limit)  # never throttled: a fixed cap on connections
        # Request deadlines, swept by one recurring timer: a timer per request (call_later
        # plus its cancel and the heap churn) cost ~15 % of the client's CPU per request.
        self._deadlines: dict[asyncio.Future[Response], float] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        self._sweep_every = min(1.0, max(0.01, timeout_s / 8))

    async def post(self, payload: bytes) -> Response:
        # asyncio.Semaphore cost ~3 µs a request here (its `locked()` builds a generator).
        if not self._slots.try_acquire():
            await self._slots.acquire()
        try:
            return await self._post(payload)
        finally:
            self._slots.release()

    async def _post(self, payload: bytes) -> Response:
        message = self._head + str(len(payload)).encode() + b"\r\n\r\n" + payload
        while self._idle:
            connection = self._idle.pop()
            if connection.closed:
                continue
            try:
                return await self._exchange(connection, message)
            except TransportError:
                # A kept-alive connection the server had already closed: nothing was
                # processed, so the request goes again on a fresh connection.
                if connection.buffer:
                    raise
        return await self._exchange(await self._connect(), message)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port, ssl=self.ssl),
                self.timeout_s,
            )
        except asyncio.TimeoutError:
            raise  # a timeout, as aiohttp reports it (TimeoutError is an OSError since 3.11)
        except OSError as exc:
            raise TransportError(
                f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}"
            ) from None
        return connection

    async def _exchange(self, connection: _Connection, message: bytes) -> Response:
        assert connection.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Response] = loop.create_future()
        connection.waiter = waiter
        connection.transport.write(message)
        # Not asyncio.wait_for (a task per request), not a timer per request: a deadline
        # the sweeper checks (a request may overrun its timeout by up to timeout/8, ≤ 1 s).
        deadlines = self._deadlines
        deadlines[waiter] = loop.time() + self.timeout_s
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._sweep_every, self._sweep)
        try:
            response = await waiter
        except BaseException:
            connection.abort()
            raise
        finally:
            del deadlines[waiter]
        if connection.keep_alive and not connection.closed and not connection.buffer:
            self._idle.append(connection)
        else:
            connection.abort()
        return response

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for waiter, deadline in list(self._deadlines.items()):
            if deadline <= now:
                _expire(waiter)
        self._sweeper = loop.call_later(self._sweep_every, self._sweep) if self._deadlines else None

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in self._idle:
            connection.abort()
        self._idle.clear()
