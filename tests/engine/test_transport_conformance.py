"""The `Transport` contract (engine/transport.py), one suite that every transport passes.

Each case runs against a raw asyncio socket server on loopback that answers in one legal
(or broken) way, and has a deadline: a transport that hangs fails the case instead of
blocking the run. New transports join through the `open_transport` fixture's params.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from evalfleet.engine._aiohttp import AiohttpTransport
from evalfleet.engine._http import FastTransport
from evalfleet.engine.transport import Transport, TransportError

T = TypeVar("T")

DEADLINE_S = 10.0  # per case; every transport finishes each case in well under a second
PATH = "/v1/chat/completions?api-version=1"
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer k3y"}
TRANSPORTS: dict[str, Callable[[str, dict[str, str], int, float], Transport]] = {
    "evalfleet": FastTransport,
    "aiohttp": AiohttpTransport,
}


def run(scenario: Coroutine[Any, Any, T], deadline: float = DEADLINE_S) -> T:
    """Run `scenario` on a fresh loop; fail (not hang) if it is not done by `deadline`."""

    async def guarded() -> T:
        task = asyncio.ensure_future(scenario)
        done, _ = await asyncio.wait({task}, timeout=deadline)
        if not done:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 2.0)
            pytest.fail(f"no result within {deadline:g} s: the transport hung")
        return task.result()

    return asyncio.run(guarded())


OpenTransport = Callable[..., contextlib.AbstractAsyncContextManager[Transport]]


@pytest.fixture(params=sorted(TRANSPORTS))
def open_transport(request: pytest.FixtureRequest) -> OpenTransport:
    """`async with open_transport(url, limit=, timeout_s=) as transport`: the transport
    under test, built with the same arguments whichever it is, closed on the way out."""
    factory = TRANSPORTS[request.param]

    @contextlib.asynccontextmanager
    async def opened(
        url: str, *, limit: int = 4, timeout_s: float = 5.0, headers: dict[str, str] | None = None
    ) -> AsyncIterator[Transport]:
        transport = factory(url, dict(HEADERS if headers is None else headers), limit, timeout_s)
        assert transport.name == request.param
        try:
            yield transport
        finally:
            await transport.aclose()

    return opened


# An answer writes to the connection; it returns whether the server reads the next request
# on it (False: the server stops reading, and the answer decides whether it closes).
Answer = Callable[[int, bytes, asyncio.StreamWriter], Awaitable[bool]]


class Server:
    """A raw HTTP/1.1 server on loopback: reads requests (head + Content-Length body) and
    lets `answer` reply; counts connections and records every request."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.requests: list[bytes] = []
        self.connections = 0  # accepted so far
        self.open = 0  # not yet closed by either side
        self.stopping = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.stopping.set()
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        await asyncio.sleep(0)  # let the handlers see their connections go
        await self._server.wait_closed()

    @property
    def url(self) -> str:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{PATH}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    request = head + await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError):
                    writer.close()  # the client closed the connection
                    return
                index = len(self.requests)
                self.requests.append(request)
                if not await self.answer(index, request, writer):
                    await reader.read()  # until the client or `answer` closes it
                    return
        finally:
            self.open -= 1

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await asyncio.sleep(0.005)


def http(status: str, body: bytes, *headers: str) -> bytes:
    head = [f"HTTP/1.1 {status}", "Content-Type: application/json", *headers]
    if not any(h.lower().startswith(("content-length", "transfer-encoding")) for h in headers):
        head.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def echo(request: bytes) -> bytes:
    """A JSON body naming the request it answers (its `i`)."""
    sent = json.loads(request.split(b"\r\n\r\n", 1)[1])
    return json.dumps({"choices": [{"message": {"content": f"answer {sent['i']}"}}]}).encode()


def payload(i: int) -> bytes:
    return json.dumps({"i": i, "messages": [{"role": "user", "content": "é" * i}]}).encode()


def text_of(body: bytes) -> str:
    return str(json.loads(body)["choices"][0]["message"]["content"])


async def keep_alive_echo(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(http("200 OK", echo(request)))
    await writer.drain()
    return True


def test_a_json_answer_with_content_length(open_transport: OpenTransport) -> None:
    async def scenario():
        async with Server(keep_alive_echo) as server, open_transport(server.url) as transport:
            response = await transport.post(payload(3))
        return response, server.requests

    response, requests = run(scenario())
    assert response.status == 200 and response.retry_after is None
    assert text_of(response.body) == "answer 3"
    # What the server saw: the POST to the URL's path and query, the given headers, the body.
    head, body = requests[0].split(b"\r\n\r\n", 1)
    lines = head.decode().split("\r\n")
    assert lines[0] == f"POST {PATH} HTTP/1.1"
    headers = {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}
    assert headers["host"].startswith("127.0.0.1:")
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer k3y"
    assert headers["content-length"] == str(len(payload(3))) and body == payload(3)


def _request_headers(request: bytes) -> dict[str, str]:
    lines = request.split(b"\r\n\r\n", 1)[0].decode().split("\r\n")[1:]
    return {name.lower(): value.strip() for name, _, value in (h.partition(":") for h in lines)}


@pytest.mark.parametrize("api_key", [None, "Bearer k3y"])
def test_credentials_in_the_url_are_basic_auth_unless_a_key_is_given(
    open_transport: OpenTransport, api_key: str | None
) -> None:
    # `user:password@` as aiohttp reads it (percent-decoded); the endpoint's API key wins.
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = api_key

    async def scenario():
        async with Server(keep_alive_echo) as server:
            url = server.url.replace("http://", "http://us%40er:p%3Ass@")
            async with open_transport(url, headers=headers) as transport:
                response = await transport.post(payload(1))
        return response, server.requests

    response, requests = run(scenario())
    assert response.status == 200
    seen = _request_headers(requests[0])
    expected = api_key or "Basic dXNAZXI6cDpzcw=="  # base64 of "us@er:p:ss"
    assert seen["authorization"] == expected
    assert seen["host"].startswith("127.0.0.1:")  # the credentials go nowhere else


def test_a_chunked_answer_arriving_in_pieces(open_transport: OpenTransport) -> None:
    async def chunked(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        body = echo(request)
        pieces = [body[:7], body[7:8], body[8:]]
        writer.write(http("200 OK", b"", "Transfer-Encoding: chunked"))
        for piece in pieces:  # a chunk split across writes too
            chunk = b"%x;ext=1\r\n%s\r\n" % (len(piece), piece)
            writer.write(chunk[:4])
            await writer.drain()
            await asyncio.sleep(0.01)
            writer.write(chunk[4:])
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    async def scenario():
        async with Server(chunked) as server, open_transport(server.url) as transport:
            responses = [await transport.post(payload(i)) for i in range(3)]
        return responses, server.connections

    responses, connections = run(scenario())
    assert [r.status for r in responses] == [200] * 3
    assert [text_of(r.body) for r in responses] == ["answer 0", "answer 1", "answer 2"]
    assert connections == 1  # the chunked body ended where it should: the connection lives


def test_keep_alive_reuses_one_connection(open_transport: OpenTransport) -> None:
    async def scenario():
        async with Server(keep_alive_echo) as server, open_transport(server.url) as transport:
            responses = [await transport.post(payload(i)) for i in range(6)]
        return responses, server.connections, len(server.requests)

    responses, connections, requests = run(scenario())
    assert [text_of(r.body) for r in responses] == [f"answer {i}" for i in range(6)]
    assert connections == 1 and requests == 6


def test_an_idle_connection_the_server_closed_is_not_reused(
    open_transport: OpenTransport,
) -> None:
    async def answer_then_close(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        # A keep-alive answer, then the server's idle timeout closes the connection.
        writer.write(http("200 OK", echo(request)))
        await writer.drain()
        writer.close()
        return False

    async def scenario():
        async with Server(answer_then_close) as server, open_transport(server.url) as transport:
            responses = []
            for i in range(3):
                responses.append(await transport.post(payload(i)))
                await server.until(lambda: server.open == 0)
                await asyncio.sleep(0.05)  # the client's loop sees the close too
        return responses, server.connections, len(server.requests)

    responses, connections, requests = run(scenario())
    assert [text_of(r.body) for r in responses] == ["answer 0", "answer 1", "answer 2"]
    assert connections == 3 and requests == 3


@pytest.mark.parametrize("framing", ["content-length", "close-delimited"])
def test_connection_close_answers(open_transport: OpenTransport, framing: str) -> None:
    async def closing(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if framing == "content-length":
            # The server stops reading but leaves the socket open: a client that reused
            # the connection would wait for an answer that never comes.
            writer.write(http("200 OK", echo(request), "Connection: close"))
        else:  # no length: the body ends where the server closes the connection
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n")
            writer.write(echo(request))
        await writer.drain()
        if framing == "close-delimited":
            writer.close()
        return False

    async def scenario():
        async with Server(closing) as server, open_transport(server.url) as transport:
            responses = [await transport.post(payload(i)) for i in range(3)]
        return responses, server.connections

    responses, connections = run(scenario())
    assert [r.status for r in responses] == [200] * 3
    assert [text_of(r.body) for r in responses] == ["answer 0", "answer 1", "answer 2"]
    assert connections == 3


def test_429_and_503_are_returned_with_retry_after(open_transport: OpenTransport) -> None:
    limited = json.dumps({"error": {"message": "slow down"}}).encode()
    answers = [
        http("429 Too Many Requests", limited, "Retry-After: 7"),
        http("503 Service Unavailable", b"busy", "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT"),
        http("503 Service Unavailable", b""),
    ]

    async def throttling(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(answers[index] if index < len(answers) else http("200 OK", echo(request)))
        await writer.drain()
        return True

    async def scenario():
        async with Server(throttling) as server, open_transport(server.url) as transport:
            responses = [await transport.post(payload(i)) for i in range(4)]
        return responses, server.connections

    responses, connections = run(scenario())
    assert [(r.status, r.retry_after) for r in responses] == [
        (429, "7"),
        (503, "Wed, 21 Oct 2015 07:28:00 GMT"),
        (503, None),
        (200, None),
    ]
    assert [r.body for r in responses[:3]] == [limited, b"busy", b""]
    assert text_of(responses[3].body) == "answer 3"
    assert connections == 1  # an error status does not cost the connection


def test_a_refused_connection_is_a_transport_error(open_transport: OpenTransport) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario():
        async with open_transport(f"http://127.0.0.1:{port}{PATH}") as transport:
            with pytest.raises(TransportError) as caught:
                await transport.post(payload(0))
        return caught.value

    error = run(scenario())
    assert str(error)  # a reason to show, not an empty message


def test_a_server_that_never_answers_times_out(open_transport: OpenTransport) -> None:
    timeout_s = 0.4

    async def silent_first(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if index == 0:
            await writer.drain()
            return False  # accepts, reads the request, never answers
        return await keep_alive_echo(index, request, writer)

    async def scenario():
        async with (
            Server(silent_first) as server,
            open_transport(server.url, timeout_s=timeout_s) as transport,
        ):
            started = time.monotonic()
            try:
                await transport.post(payload(0))
            except Exception as exc:  # judged below, by type
                error: BaseException | None = exc
            else:
                error = None
            elapsed = time.monotonic() - started
            after = await transport.post(payload(1))  # the transport still works
        return error, elapsed, after

    error, elapsed, after = run(scenario())
    assert isinstance(error, asyncio.TimeoutError), repr(error)
    assert not isinstance(error, TransportError)
    # FastTransport sweeps deadlines every timeout/8: it may overrun by that much.
    assert timeout_s * 0.9 <= elapsed < timeout_s * 1.5 + 0.5
    assert after.status == 200 and text_of(after.body) == "answer 1"


@pytest.fixture
def unanswered_port() -> Iterator[int]:
    """A port whose connections never complete: a listener with a full accept queue (the
    kernel drops further SYNs instead of refusing them, as Linux does)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    pending = []
    try:
        for _ in range(3):  # fill the queue; later connections wait in SYN-SENT
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            pending.append(filler)
        with socket.socket() as probe:
            probe.settimeout(0.3)
            if probe.connect_ex(("127.0.0.1", port)) != errno.EAGAIN:
                pytest.skip("this system does not leave connections to a full queue pending")
        yield port
    finally:
        for filler in pending:
            filler.close()
        listener.close()


def test_a_connection_that_never_completes_times_out(
    open_transport: OpenTransport, unanswered_port: int
) -> None:
    timeout_s = 0.4

    async def scenario():
        url = f"http://127.0.0.1:{unanswered_port}{PATH}"
        async with open_transport(url, timeout_s=timeout_s) as transport:
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError) as caught:
                await transport.post(payload(0))
        return caught.value, time.monotonic() - started

    error, elapsed = run(scenario())
    assert not isinstance(error, TransportError)
    assert timeout_s * 0.9 <= elapsed < timeout_s * 1.5 + 0.5


@pytest.mark.parametrize("when", ["first request", "reused connection"])
def test_a_body_cut_short_is_an_error_not_a_hang(open_transport: OpenTransport, when: str) -> None:
    cut_at = 0 if when == "first request" else 1

    async def cut_short(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        if index != cut_at:
            return await keep_alive_echo(index, request, writer)
        body = echo(request)
        writer.write(http("200 OK", body, f"Content-Length: {len(body) + 100}"))
        await writer.drain()
        writer.close()
        return False

    async def scenario():
        async with Server(cut_short) as server, open_transport(server.url) as transport:
            for i in range(cut_at):
                assert (await transport.post(payload(i))).status == 200
            started = time.monotonic()
            with pytest.raises(TransportError):
                await transport.post(payload(cut_at))
            elapsed = time.monotonic() - started
        return elapsed, len(server.requests)

    elapsed, requests = run(scenario())
    assert elapsed < 2.0  # ended by the close, not by the 5 s timeout
    assert requests == cut_at + 1  # not sent again behind the caller's back


def test_64_concurrent_requests_over_a_bounded_pool(open_transport: OpenTransport) -> None:
    limit = 8
    peak = 0

    async def slow_echo(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(0.001 * (index % 7))  # answers finish out of order
        writer.write(http("200 OK", echo(request)))
        await writer.drain()
        return True

    async def scenario():
        nonlocal peak
        async with Server(slow_echo) as server, open_transport(server.url, limit=limit) as t:

            async def one(i: int) -> bytes:
                nonlocal peak
                response = await t.post(payload(i))
                peak = max(peak, server.open)
                assert response.status == 200
                return response.body

            bodies = await asyncio.gather(*(one(i) for i in range(64)))
        return bodies, server.connections, len(server.requests)

    bodies, connections, requests = run(scenario())
    assert [text_of(body) for body in bodies] == [f"answer {i}" for i in range(64)]
    assert requests == 64
    assert 1 < connections <= limit and peak <= limit


def test_aclose_closes_pooled_connections(open_transport: OpenTransport) -> None:
    async def scenario():
        async with Server(keep_alive_echo) as server:
            async with open_transport(server.url) as transport:
                responses = await asyncio.gather(*(transport.post(payload(i)) for i in range(3)))
                await asyncio.sleep(0.02)
                open_before = server.open
            await server.until(lambda: server.open == 0)  # the deadline fails a leak
        return responses, open_before

    responses, open_before = run(scenario())
    assert [text_of(r.body) for r in responses] == ["answer 0", "answer 1", "answer 2"]
    assert open_before >= 1
