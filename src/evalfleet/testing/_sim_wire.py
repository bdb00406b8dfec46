"""A minimal HTTP/1.1 server for the endpoint simulator: keep-alive, one request at a time
per connection, `Content-Length` or chunked request bodies.

Why not aiohttp's server: at 1,000 concurrent requests on two cores the simulator shares
the machine with the client it measures, and aiohttp's request and response objects cost
it ~110 µs per request. This costs a fraction of that, so that a throughput benchmark
measures the client, not the simulator. The handlers are the same ones `build_app` serves
through aiohttp; they see a `WireRequest` with the few attributes they use.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any, NamedTuple

_HEAD_END = b"\r\n\r\n"
_MAX_HEAD = 64 * 1024
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class Reply(NamedTuple):
    """What a simulator handler returns: a JSON body and its status."""

    status: int
    body: bytes
    headers: dict[str, str] | None = None


class Headers(dict):
    """Request headers by lower-cased name; `get` takes any case, as aiohttp's do."""

    def get(self, name: str, default: Any = None) -> Any:
        return dict.get(self, name.lower(), default)


class WireRequest:
    __slots__ = ("_body", "headers", "method", "raw_path", "transport")

    def __init__(
        self, method: str, raw_path: str, headers: Headers, body: bytes, transport: Any
    ) -> None:
        self.method = method
        self.raw_path = raw_path
        self.headers = headers
        self._body = body
        self.transport = transport

    @property
    def path(self) -> str:
        return self.raw_path.partition("?")[0]

    async def read(self) -> bytes:
        return self._body


Dispatch = Callable[[WireRequest], Awaitable[Reply]]


def encode_reply(reply: Reply, keep_alive: bool) -> bytes:
    lines = [
        f"HTTP/1.1 {reply.status} {_PHRASES.get(reply.status, 'Unknown')}",
        "Content-Type: application/json; charset=utf-8",
        f"Content-Length: {len(reply.body)}",
    ]
    if reply.headers:
        lines.extend(f"{name}: {value}" for name, value in reply.headers.items())
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + reply.body


class _Malformed(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Connection(asyncio.Protocol):
    __slots__ = ("buffer", "dispatch", "handler", "keep_alive", "max_body", "transport")

    def __init__(self, dispatch: Dispatch, max_body: int) -> None:
        self.dispatch = dispatch
        self.max_body = max_body
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.handler: asyncio.Future[Reply] | None = None
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        # A client that gives up frees what its request held (a capacity slot, a hang).
        if self.handler is not None:
            self.handler.cancel()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.handler is None:
            self._next_request()

    def _next_request(self) -> None:
        try:
            parsed = self._parse()
        except _Malformed as exc:
            self._fail(exc.status, str(exc))
            return
        if parsed is None:
            return
        self.handler = handler = asyncio.ensure_future(self.dispatch(parsed))
        handler.add_done_callback(self._respond)

    def _parse(self) -> WireRequest | None:
        buffer = self.buffer
        end = buffer.find(_HEAD_END)
        if end < 0:
            if len(buffer) > _MAX_HEAD:
                raise _Malformed(431, "request head too large")
            return None
        head = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = head[0].split(" ")
        except ValueError:
            raise _Malformed(400, f"bad request line {head[0]!r}") from None
        headers = Headers()
        for line in head[1:]:
            name, sep, value = line.partition(":")
            if not sep:
                raise _Malformed(400, f"bad header line {line!r}")
            headers[name.strip().lower()] = value.strip()
        start = end + 4
        if headers.get("transfer-encoding", "").lower() == "chunked":
            decoded = _dechunk(buffer, start, self.max_body)
            if decoded is None:
                return None
            body, consumed = decoded
        else:
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                raise _Malformed(400, "bad Content-Length") from None
            if length > self.max_body:
                raise _Malformed(413, "request body too large")
            if len(buffer) - start < length:
                return None
            body, consumed = bytes(buffer[start : start + length]), start + length
        del buffer[:consumed]
        connection = headers.get("connection", "").lower()
        self.keep_alive = connection != "close" and (
            version == "HTTP/1.1" or connection == "keep-alive"
        )
        return WireRequest(method, target, headers, body, self.transport)

    def _respond(self, handler: asyncio.Future[Reply]) -> None:
        self.handler = None
        transport = self.transport
        if handler.cancelled() or transport is None or transport.is_closing():
            return
        error = handler.exception()
        if error is not None:
            self._fail(500, f"simulator error: {error!r}")
            return
        transport.write(encode_reply(handler.result(), self.keep_alive))
        if not self.keep_alive:
            transport.close()
        elif self.buffer:
            self._next_request()

    def _fail(self, status: int, message: str) -> None:
        if self.transport is not None:
            error = {"error": {"message": message, "type": "invalid_request_error"}}
            body = json.dumps(error).encode()
            self.transport.write(encode_reply(Reply(status, body), keep_alive=False))
            self.transport.close()


def _dechunk(buffer: bytearray, start: int, max_body: int) -> tuple[bytes, int] | None:
    """(body, bytes consumed) of a complete chunked body at `start`, None if incomplete."""
    body = bytearray()
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[at:line_end]).split(b";")[0], 16)
        except ValueError:
            raise _Malformed(400, "bad chunk size") from None
        at = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n", at)
            if trailer_end < 0:
                return None
            return bytes(body), trailer_end + 2
        if len(buffer) < at + size + 2:
            return None
        body += buffer[at : at + size]
        if len(body) > max_body:
            raise _Malformed(413, "request body too large")
        at += size + 2


async def start_server(
    dispatch: Dispatch, host: str, port: int, *, max_body: int
) -> asyncio.Server:
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Connection(dispatch, max_body), host, port, backlog=4096, reuse_address=True
    )
