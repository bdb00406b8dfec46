"""A lean HTTP/1.1 keep-alive client for the engine's one job: POST JSON, read JSON.

Why not only aiohttp: measured on this project's 2-core reference machine
(`benchmarks/engine_throughput.py`, 256 in flight), aiohttp even tuned costs ~340-370 µs of
client CPU per request and keeps the endpoint 0.88-0.90 busy; this transport costs ~110-125
µs and keeps it 0.96-0.97 busy. It speaks what OpenAI-compatible servers and the gateways in
front of them answer to a non-streaming POST, as aiohttp (llhttp) reads it: Content-Length,
chunked (with trailers) or close-delimited bodies; keep-alive or `Connection: close`; 1xx
interim answers; 204/304 without a body; gzip/deflate bodies; redirects (followed as aiohttp
follows them); HTTP or HTTPS with the trust of `TlsSettings`. The engine falls back to
aiohttp whenever a proxy applies to the endpoint.

The common answer (a 200 with Content-Length, kept alive) takes the same path as before
this grew: the rarer cases cost only where they occur (a redirect is followed outside the
pool when it leaves the origin).

Errors are `TransportError` (the connection failed or broke, or the answer is not legal
HTTP), `CertificateError` (the server's certificate failed verification) or
`asyncio.TimeoutError` (the contract every transport keeps: `engine/transport.py`).
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys
import zlib
from dataclasses import dataclass
from urllib.parse import SplitResult, urljoin, urlsplit

from evalfleet.engine.limits import AdaptiveLimit

# Defined once in transport.py; still importable from here.
from evalfleet.engine.transport import (
    MAX_REDIRECTS,
    CertificateError,
    Response,
    TlsSettings,
    TransportError,
    certificate_failure,
    tls_context,
    with_url_credentials,
    with_user_agent,
)

__all__ = ["FastTransport", "Response", "TransportError", "proxy_applies"]

_MAX_HEADER_BYTES = 64 * 1024
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class _Redirect(Response):
    """A redirect as it came: `post` follows it; a caller never sees one with a Location."""

    location: str | None = None


def proxy_applies(url: str) -> bool:
    """Whether the environment routes `url` through a proxy (then aiohttp handles it)."""
    if sys.platform not in ("darwin", "win32") and not any(
        name[-6:].lower() == "_proxy" for name in os.environ
    ):
        # All urllib would read here, without importing it (http.client and more, ~5 ms
        # of every run): with no *_proxy variable, getproxies() is empty on this platform.
        return False
    from urllib.request import getproxies, proxy_bypass

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
        self.pooled = True  # False: a one-off connection to a redirect's other origin

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            # A server may answer and close at once: whatever is complete still counts.
            try:
                response = self._parse(final=True)
            except Exception as error:  # never out of a protocol callback
                waiter.set_exception(_unreadable(error))
            else:
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
        except Exception as exc:  # one escaping here would hang the request
            self.waiter = None
            waiter.set_exception(_unreadable(exc))
            self.abort()
            return
        if response is not None:
            self.waiter = None
            waiter.set_result(response)

    def _parse(self, final: bool) -> Response | None:
        buffer = self.buffer
        while True:
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
            if status >= 200:
                break
            if status == 101:
                raise TransportError("the server switched protocols (101) on a POST")
            del buffer[: head_end + 4]  # 100 Continue, 103 Early Hints: the answer follows
        length: int | None = None
        chunked = False
        retry_after = None
        connection = ""
        encoding = None
        for line in header_text.split("\r\n"):
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                # As llhttp (aiohttp) reads it: digits only, once ("45, 45" is an error).
                value = value.strip()
                if length is not None or not (value.isascii() and value.isdigit()):
                    raise TransportError(f"invalid or duplicate Content-Length: {value[:40]!r}")
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "retry-after":
                retry_after = value.strip()
            elif name == "connection":
                connection = value.strip().lower()
            elif name == "content-encoding":
                encoding = value.strip().lower()
        body_start = head_end + 4
        if status == 204 or status == 304:
            body, end = b"", body_start  # no body, whatever the headers say
        elif chunked:
            if length is not None:
                raise TransportError("Transfer-Encoding: chunked beside a Content-Length")
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
        if encoding is not None and body:
            body = _decode(body, encoding)  # before the bytes go: a failure keeps them
        del buffer[:end]
        self.keep_alive = "close" not in connection and status_line.startswith("HTTP/1.1")
        if status in _REDIRECTS:
            return _Redirect(status, body, retry_after, _header(header_text, "location"))
        return Response(status, body, retry_after)

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()


def _unreadable(exc: Exception) -> TransportError:
    if isinstance(exc, TransportError):
        return exc
    return TransportError(f"unreadable response ({type(exc).__name__}: {exc})")


def _header(header_text: str, wanted: str) -> str | None:
    for line in header_text.split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == wanted:
            return value.strip()
    return None


def _decode(body: bytes, encoding: str) -> bytes:
    """A body as it was before its Content-Encoding, the codings aiohttp undoes; one it
    does not know passes as it came."""
    try:
        if encoding in ("gzip", "x-gzip"):
            return zlib.decompress(body, 16 + zlib.MAX_WBITS)
        if encoding == "deflate":  # zlib-wrapped as the RFC says, or raw as IIS sent it
            try:
                return zlib.decompress(body)
            except zlib.error:
                return zlib.decompress(body, -zlib.MAX_WBITS)
    except zlib.error as exc:
        raise TransportError(f"cannot decode the {encoding} body: {exc}") from None
    if encoding == "br":  # never asked for; aiohttp fails it too unless Brotli is installed
        raise TransportError("cannot decode the br (brotli) body: it was not asked for")
    return body


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

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        limit: int,
        timeout_s: float,
        tls: TlsSettings | None = None,
    ) -> None:
        url, headers = with_url_credentials(url, with_user_agent(headers))
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported URL {url!r}")
        self.url = url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = tls
        self.ssl: ssl.SSLContext | None = tls_context(tls) if parts.scheme == "https" else None
        self._headers = {**headers, "Accept-Encoding": "gzip, deflate"}
        self._head = _request_head("POST", parts, self._headers) + b"Content-Length: "
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
            message = self._head + str(len(payload)).encode() + b"\r\n\r\n" + payload
            response = await self._post(message)
            if type(response) is _Redirect:
                # Rare, so off the common path; the chain gets one more timeout_s.
                return await asyncio.wait_for(self._follow(response, payload), self.timeout_s)
            return response
        finally:
            self._slots.release()

    async def _post(self, message: bytes) -> Response:
        while self._idle:
            connection = self._idle.pop()
            if connection.closed or connection.buffer:
                # Closed while idle, or sent something unasked (a 408 before closing).
                connection.abort()
                continue
            try:
                return await self._exchange(connection, message)
            except TransportError:
                # A kept-alive connection the server had already closed: nothing was
                # processed, so the request goes again on a fresh connection.
                if connection.buffer:
                    raise
        connection = await self._connect(self.host, self.port, self.ssl)
        return await self._exchange(connection, message)

    async def _follow(self, response: Response, payload: bytes) -> Response:
        """Follow redirects as aiohttp does (its ClientSession._request, 3.9-3.14)."""
        url, method, headers = self.url, "POST", self._headers
        body: bytes | None = payload
        redirects = 0
        while isinstance(response, _Redirect):
            redirects += 1
            location = response.location
            if redirects >= MAX_REDIRECTS:
                raise TransportError(f"too many redirects ({redirects}), the last to {location}")
            if location is None:
                return response  # nowhere to go: the redirect is the answer
            if response.status == 303 or (response.status in (301, 302) and method == "POST"):
                method, body = "GET", None
            target = urlsplit(urljoin(url, location))
            if target.scheme not in ("http", "https") or not target.hostname:
                raise TransportError(f"redirect to a URL that is not http(s): {location[:200]!r}")
            if _origin(target) != _origin(urlsplit(url)):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
            url = target.geturl()
            message = _request_head(method, target, headers)
            if body is not None:
                message += b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            else:
                message += b"\r\n"
            host, port, https = _origin(target)
            if (host, port, https) == (self.host, self.port, self.ssl is not None):
                response = await self._post(message)
            else:
                context = (self.ssl or tls_context(self._tls)) if https else None
                connection = await self._connect(host, port, context)
                connection.pooled = False
                response = await self._exchange(connection, message)
        return response

    async def _connect(self, host: str, port: int, context: ssl.SSLContext | None) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(_Connection, host, port, ssl=context),
                self.timeout_s,
            )
        except asyncio.TimeoutError:
            raise  # a timeout, as aiohttp reports it (TimeoutError is an OSError since 3.11)
        except ssl.SSLCertVerificationError as exc:
            raise CertificateError(certificate_failure(host, port, exc)) from None
        except OSError as exc:
            raise TransportError(
                f"cannot connect to {host}:{port}: {exc.strerror or exc}"
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
        if (
            connection.keep_alive
            and connection.pooled
            and not connection.closed
            and not connection.buffer
        ):
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


def _request_head(method: str, parts: SplitResult, headers: dict[str, str]) -> bytes:
    """The request line and headers, up to the body's framing (the caller ends the head)."""
    target = parts.path or "/"
    if parts.query:
        target += f"?{parts.query}"
    host_header = parts.netloc.rsplit("@", 1)[-1]
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host_header}", "Connection: keep-alive"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


def _origin(parts: SplitResult) -> tuple[str, int, bool]:
    https = parts.scheme == "https"
    return (parts.hostname or "", parts.port or (443 if https else 80), https)
