"""The `Transport` contract (engine/transport.py), one suite that every transport passes.

Each case runs against a raw asyncio socket server on loopback (plain, or TLS with a
private CA the suite makes with the `openssl` CLI) that answers in one legal (or broken)
way, and has a deadline: a transport that hangs fails the case instead of blocking the
run. The cases that decide what a sample sees run through `EndpointClient` too
(`open_client`): each ends in an answer, a retry, or a sample error in the server's own
words. New transports join through the `open_transport` fixture's params.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from evalfleet import __version__
from evalfleet.engine._aiohttp import AiohttpTransport
from evalfleet.engine._http import FastTransport
from evalfleet.engine.client import EndpointClient, RequestFailed, RetryPolicy
from evalfleet.engine.transport import CertificateError, TlsSettings, Transport, TransportError
from evalfleet.exceptions import ConfigError

T = TypeVar("T")

DEADLINE_S = 10.0  # per case; every transport finishes each case in well under a second
PATH = "/v1/chat/completions?api-version=1"
HEADERS = {"Content-Type": "application/json", "Authorization": "Bearer k3y"}
TRANSPORTS: dict[str, Callable[..., Transport]] = {
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
def transport_name(request: pytest.FixtureRequest) -> str:
    """The transport under test: every case runs once for each."""
    return str(request.param)


@pytest.fixture
def open_transport(transport_name: str) -> OpenTransport:
    """`async with open_transport(url, limit=, timeout_s=) as transport`: the transport
    under test, built with the same arguments whichever it is, closed on the way out."""
    factory = TRANSPORTS[transport_name]

    @contextlib.asynccontextmanager
    async def opened(
        url: str,
        *,
        limit: int = 4,
        timeout_s: float = 5.0,
        headers: dict[str, str] | None = None,
        tls: TlsSettings | None = None,
    ) -> AsyncIterator[Transport]:
        headers = dict(HEADERS if headers is None else headers)
        transport = factory(url, headers, limit, timeout_s, tls)
        assert transport.name == transport_name
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

    def __init__(self, answer: Answer, tls: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.tls = tls
        self.requests: list[bytes] = []
        self.connections = 0  # accepted so far
        self.open = 0  # not yet closed by either side
        self.stopping = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, ssl=self.tls)
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
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{port}{PATH}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = int(_request_headers(head).get("content-length", 0))  # a GET: none
                    request = head + await reader.readexactly(length)
                except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
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
    # Some WAF rules block requests without a User-Agent; both decode what they accept.
    assert headers["user-agent"] == f"evalfleet/{__version__}"
    assert {"gzip", "deflate"} <= {e.strip() for e in headers["accept-encoding"].split(",")}


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


# --------------------------------------------------------------------------- through the client


OpenClient = Callable[..., contextlib.AbstractAsyncContextManager[EndpointClient]]


@pytest.fixture
def open_client(transport_name: str, monkeypatch: pytest.MonkeyPatch) -> OpenClient:
    """`async with open_client(url, retries=, timeout_s=, tls=) as client`: an
    EndpointClient on the transport under test, as a sample's request meets it."""
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EVALFLEET_HTTP", "aiohttp" if transport_name == "aiohttp" else "auto")

    @contextlib.asynccontextmanager
    async def opened(
        url: str, *, retries: int = 2, timeout_s: float = 5.0, tls: TlsSettings | None = None
    ) -> AsyncIterator[EndpointClient]:
        client = EndpointClient(
            url,
            api_key="k3y",
            parallelism=4,
            timeout_s=timeout_s,
            retry=RetryPolicy(max_retries=retries, base_s=0.0),  # retry at once
            tls=tls,
        )
        async with client:
            assert client.transport_name == transport_name
            yield client

    return opened


def answer_with(*replies: bytes) -> Answer:
    """Answer request i with replies[i] (the last one from then on), keeping the connection."""

    async def answer(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(replies[min(index, len(replies) - 1)])
        await writer.drain()
        return True

    return answer


def chat(content: str | None, finish_reason: str = "stop") -> bytes:
    message = {"role": "assistant", "content": content}
    return json.dumps({"choices": [{"message": message, "finish_reason": finish_reason}]}).encode()


async def send_all(client: EndpointClient, count: int) -> list[str | RequestFailed]:
    """What `count` samples see: their answer's text, or the RequestFailed they end with."""
    seen: list[str | RequestFailed] = []
    for i in range(count):
        try:
            seen.append((await client.send(payload(i))).text)
        except RequestFailed as exc:
            seen.append(exc)
    return seen


# --------------------------------------------------------------------------- TLS


def make_certs(where: Path) -> Path:
    """In `where`: a private CA (ca.pem), a server certificate it signed for 127.0.0.1
    (server.pem, server.key), and a CA nobody uses (other_ca.pem)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make the test CA")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=where, check=True, capture_output=True, timeout=60)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other_ca"):
        openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem", "-days", "2",
                "-subj", f"/CN=evalfleet test {ca}",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (where / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n"
    )
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext")  # fmt: skip
    return where


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def server_tls(certs: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    return context


@pytest.fixture
def no_system_trust(monkeypatch: pytest.MonkeyPatch, certs: Path) -> None:
    """The system store trusts the private CA only when a case says so."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "other_ca.pem"))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


@pytest.mark.parametrize("trust", ["SSL_CERT_FILE", "ca_bundle", "insecure"])
def test_https_with_a_private_ca(
    open_client: OpenClient,
    server_tls: ssl.SSLContext,
    certs: Path,
    no_system_trust: None,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    trust: str,
) -> None:
    tls = None
    if trust == "SSL_CERT_FILE":
        monkeypatch.setenv("SSL_CERT_FILE", str(certs / "ca.pem"))
    elif trust == "ca_bundle":
        tls = TlsSettings(ca_bundle=str(certs / "ca.pem"))
    else:
        tls = TlsSettings(insecure=True)

    async def scenario():
        async with (
            Server(answer_with(http("200 OK", chat("over TLS"))), server_tls) as server,
            open_client(server.url, tls=tls) as client,
        ):
            return await send_all(client, 3), server.connections

    seen, connections = run(scenario())
    assert seen == ["over TLS"] * 3 and connections == 1
    warned = "TLS certificate verification is off for https://127.0.0.1:" in capfd.readouterr().err
    assert warned == (trust == "insecure")


def test_an_untrusted_certificate_is_fatal_at_once(
    open_client: OpenClient, open_transport: OpenTransport, server_tls: ssl.SSLContext,
    no_system_trust: None,
) -> None:  # fmt: skip
    async def scenario():
        async with Server(answer_with(http("200 OK", chat("never"))), server_tls) as server:
            async with open_transport(server.url) as transport:
                with pytest.raises(CertificateError) as raw:
                    await transport.post(payload(0))
            async with open_client(server.url, retries=8) as client:
                with pytest.raises(RequestFailed) as failed:
                    await client.send(payload(1))
        return raw.value, failed.value, client.stats.requests, len(server.requests)

    raw, failed, attempts, requests = run(scenario())
    assert isinstance(raw, TransportError) and "certificate verification failed" in str(raw)
    # One line that says what to do, fatal (the run stops), and not retried 9 times.
    assert failed.fatal and "\n" not in failed.reason
    assert failed.reason.startswith("TLS certificate verification failed for 127.0.0.1:")
    assert "ca_bundle" in failed.reason
    assert attempts == 1 and requests == 0


def test_a_ca_bundle_that_is_not_pem_is_one_config_line(
    open_client: OpenClient, tmp_path: Path
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("not a certificate\n")

    async def scenario():
        with pytest.raises(ConfigError) as caught:
            async with open_client("https://127.0.0.1:9/v1", tls=TlsSettings(str(bundle))):
                pass
        return caught.value

    error = run(scenario())
    assert str(error).startswith(f"endpoint.ca_bundle: cannot load the CA bundle {bundle}")
    assert "\n" not in str(error)


# --------------------------------------------------------------------------- bodies


def _compressed(coding: str, body: bytes) -> bytes:
    if coding == "gzip":
        return gzip.compress(body)
    if coding == "deflate":
        return zlib.compress(body)
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)  # raw deflate, as IIS sends it
    return raw.compress(body) + raw.flush()


@pytest.mark.parametrize("coding", ["gzip", "deflate", "raw deflate"])
def test_compressed_bodies_are_decoded(open_client: OpenClient, coding: str) -> None:
    header = "deflate" if "deflate" in coding else coding
    body = _compressed(coding, chat("unzipped " + "é" * 50))
    reply = http("200 OK", body, f"Content-Encoding: {header}", f"Content-Length: {len(body)}")

    async def scenario():
        async with Server(answer_with(reply)) as server, open_client(server.url) as client:
            return await send_all(client, 2), len(server.requests), server.connections

    seen, requests, connections = run(scenario())
    assert seen == ["unzipped " + "é" * 50] * 2
    assert requests == 2 and connections == 1  # no retry, the connection lives on


def test_chunked_bodies_with_trailers(open_transport: OpenTransport) -> None:
    async def chunked(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        body = echo(request)
        writer.write(http("200 OK", b"", "Transfer-Encoding: chunked", "Trailer: X-Checksum"))
        writer.write(b"%x\r\n%s\r\n" % (len(body), body))
        writer.write(b"0\r\nX-Checksum: %d\r\n" % zlib.crc32(body))
        await writer.drain()
        await asyncio.sleep(0.01)  # the trailer section ends in a later packet
        writer.write(b"X-Other: 1\r\n\r\n")
        await writer.drain()
        return True

    async def scenario():
        async with Server(chunked) as server, open_transport(server.url) as transport:
            responses = [await transport.post(payload(i)) for i in range(3)]
        return responses, server.connections

    responses, connections = run(scenario())
    assert [text_of(r.body) for r in responses] == ["answer 0", "answer 1", "answer 2"]
    assert connections == 1  # the trailers were read to their end, not left for the next


@pytest.mark.parametrize(
    "interim",
    [b"HTTP/1.1 100 Continue\r\n\r\n", b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n"],
    ids=["100", "103"],
)
def test_interim_responses_before_the_answer(open_transport: OpenTransport, interim: bytes) -> None:
    async def interim_first(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(interim)
        await writer.drain()
        await asyncio.sleep(0.01)  # the answer comes in a later packet
        writer.write(http("200 OK", echo(request)))
        await writer.drain()
        return True

    async def scenario():
        async with Server(interim_first) as server, open_transport(server.url) as transport:
            responses = [await transport.post(payload(i)) for i in range(2)]
        return responses, server.connections

    responses, connections = run(scenario())
    assert [(r.status, text_of(r.body)) for r in responses] == [
        (200, "answer 0"),
        (200, "answer 1"),
    ]
    assert connections == 1


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_answers_without_a_body(open_transport: OpenTransport, status: str) -> None:
    # No Content-Length and the connection left open: the answer ends at its head.
    no_body = f"HTTP/1.1 {status}\r\nServer: gateway\r\n\r\n".encode()

    async def scenario():
        async with (
            Server(answer_with(no_body, http("200 OK", chat("next")))) as server,
            open_transport(server.url) as transport,
        ):
            first = await transport.post(payload(0))
            second = await transport.post(payload(1))
        return first, second, server.connections

    first, second, connections = run(scenario())
    assert (first.status, first.body) == (int(status[:3]), b"")
    assert text_of(second.body) == "next" and connections == 1


def test_an_answer_without_a_body_is_a_sample_error(open_client: OpenClient) -> None:
    async def scenario():
        no_body = b"HTTP/1.1 204 No Content\r\n\r\n"
        async with Server(answer_with(no_body)) as server, open_client(server.url) as client:
            return await send_all(client, 1), len(server.requests)

    (failed,), requests = run(scenario())
    assert isinstance(failed, RequestFailed) and failed.reason == "HTTP 204: (empty body)"
    assert requests == 1


# --------------------------------------------------------------------------- redirects


def request_line(request: bytes) -> tuple[str, str]:
    method, target, _ = request.split(b"\r\n", 1)[0].decode().split(" ")
    return method, target


def redirecting(status: int, location: str | None) -> Answer:
    """Redirect every request for PATH; answer any other with what it received."""

    async def answer(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        method, target = request_line(request)
        if target == PATH:
            where = () if location is None else (f"Location: {location}",)
            writer.write(http(f"{status} Moved", b"", *where))
        else:
            body = request.split(b"\r\n\r\n", 1)[1]
            seen = {"method": method, "target": target, "body": body.decode(),
                    "headers": _request_headers(request)}  # fmt: skip
            writer.write(http("200 OK", json.dumps(seen).encode()))
        await writer.drain()
        return True

    return answer


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirects_on_the_same_origin(open_transport: OpenTransport, status: int) -> None:
    async def scenario():
        async with (
            Server(redirecting(status, "/v2/chat?moved=1")) as server,
            open_transport(server.url) as transport,
        ):
            responses = [await transport.post(payload(i)) for i in range(2)]
        return responses, server.connections

    responses, connections = run(scenario())
    for i, response in enumerate(responses):
        seen = json.loads(response.body)
        assert response.status == 200 and seen["target"] == "/v2/chat?moved=1"
        if status in (307, 308):  # the POST again, with its body
            assert seen["method"] == "POST" and seen["body"] == payload(i).decode()
        else:  # 301/302 of a POST, and 303: a GET without a body, as aiohttp does it
            assert seen["method"] == "GET" and seen["body"] == ""
            assert "content-length" not in seen["headers"]
        assert seen["headers"]["authorization"] == "Bearer k3y"  # same origin: kept
    assert connections == 1  # both hops over the kept-alive connection


def test_a_redirect_to_another_origin_drops_the_authorization(
    open_transport: OpenTransport,
) -> None:
    async def scenario():
        async with Server(redirecting(307, "/unused")) as elsewhere:
            target = elsewhere.url.replace(PATH, "/v1/moved")
            async with (
                Server(redirecting(308, target)) as server,
                open_transport(server.url) as transport,
            ):
                response = await transport.post(payload(4))
        return response, len(server.requests), len(elsewhere.requests)

    response, here, there = run(scenario())
    seen = json.loads(response.body)
    assert (seen["method"], seen["target"], seen["body"]) == (
        "POST",
        "/v1/moved",
        payload(4).decode(),
    )
    assert "authorization" not in seen["headers"]  # the key goes to no other origin
    assert seen["headers"]["user-agent"] == f"evalfleet/{__version__}"
    assert here == 1 and there == 1


def test_redirects_end_at_the_tenth(open_transport: OpenTransport) -> None:
    async def endless(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(http("307 Temporary Redirect", b"", f"Location: {PATH}&hop={index}"))
        await writer.drain()
        return True

    async def scenario():
        async with Server(endless) as server, open_transport(server.url) as transport:
            with pytest.raises(TransportError) as caught:
                await transport.post(payload(0))
        return caught.value, len(server.requests)

    error, requests = run(scenario())
    assert requests == 10 and str(error).startswith("too many redirects (10), the last to /v1/")


def test_a_redirect_without_location_is_the_answer(open_transport: OpenTransport) -> None:
    async def scenario():
        async with (
            Server(redirecting(302, None)) as server,
            open_transport(server.url) as transport,
        ):
            return await transport.post(payload(0)), len(server.requests)

    response, requests = run(scenario())
    assert response.status == 302 and requests == 1


# --------------------------------------------------------------------------- connections


def test_every_sample_is_answered_when_the_server_closes_idle_connections(
    open_client: OpenClient,
) -> None:
    async def close_every_other(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(http("200 OK", echo(request)))
        await writer.drain()
        if index % 2:
            await asyncio.sleep(0.01)  # idle, then the server's keep-alive timeout
            writer.close()
            return False
        return True

    async def scenario():
        async with Server(close_every_other) as server, open_client(server.url) as client:
            seen = []
            for i in range(8):
                seen += await send_all(client, 1)
                await asyncio.sleep(0.03 if i % 2 else 0)
            return seen

    assert run(scenario()) == ["answer 0"] * 8  # payload(0) each time: `send_all` counts from 0


@pytest.mark.parametrize(
    "framing",
    [
        ("Content-Length: {n}, {n}",),
        ("Content-Length: {n}", "Content-Length: {n}"),
        ("Content-Length: {n}", "Content-Length: {m}"),
        ("Content-Length: -{n}",),
        ("Content-Length: {n}", "Transfer-Encoding: chunked"),
    ],
    ids=["45, 45", "twice the same", "two values", "negative", "beside chunked"],
)
def test_bad_content_lengths_are_transport_errors_at_once(
    open_transport: OpenTransport, open_client: OpenClient, framing: tuple[str, ...]
) -> None:
    body = chat("framed")
    headers = [h.format(n=len(body), m=len(body) + 1) for h in framing]
    reply = http("200 OK", body, *headers)

    async def scenario():
        async with Server(answer_with(reply)) as server:
            async with open_transport(server.url, timeout_s=30) as transport:
                with pytest.raises(TransportError) as raw:
                    await transport.post(payload(0))
            async with open_client(server.url, retries=1, timeout_s=30) as client:
                seen = await send_all(client, 1)
        return raw.value, seen[0], len(server.requests)

    # The 30 s timeout would fail the 10 s deadline: the error comes from the answer itself.
    raw, failed, requests = run(scenario())
    assert "content-length" in str(raw).lower()
    assert isinstance(failed, RequestFailed) and failed.kind == "connection"
    assert "content-length" in failed.reason.lower()
    assert requests == 3  # the raw post, then the client's attempt and one retry


def test_a_body_that_stalls_halfway_times_out(open_transport: OpenTransport) -> None:
    timeout_s = 0.4

    async def stall(index: int, request: bytes, writer: asyncio.StreamWriter) -> bool:
        body = echo(request)
        writer.write(http("200 OK", body)[: -len(body) // 2])
        await writer.drain()
        return False  # the rest never comes; the connection stays open

    async def scenario():
        async with (
            Server(stall) as server,
            open_transport(server.url, timeout_s=timeout_s) as transport,
        ):
            started = time.monotonic()
            with pytest.raises(asyncio.TimeoutError) as caught:
                await transport.post(payload(0))
        return caught.value, time.monotonic() - started

    error, elapsed = run(scenario())
    assert not isinstance(error, TransportError)
    assert elapsed >= timeout_s * 0.9  # ended by its deadline (the case's own bounds it)


# --------------------------------------------------------------------------- what samples see

NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title>\r\n<style>body{width:35em}</style></head>\r\n"
    "<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<p>Caf\u00e9 &amp; model are "
    "down</p>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize("page", ["utf-8", "gzip", "windows-1252"])
def test_a_load_balancer_502_page_is_retried_then_a_readable_error(
    open_client: OpenClient, page: str
) -> None:
    body = NGINX_502.encode("cp1252" if page == "windows-1252" else "utf-8")
    headers = ["Content-Type: text/html"]
    if page == "gzip":
        body = gzip.compress(body)
        headers += ["Content-Encoding: gzip", f"Content-Length: {len(body)}"]
    reply = http("502 Bad Gateway", body, *headers)

    async def scenario():
        async with Server(answer_with(reply)) as server, open_client(server.url) as client:
            return await send_all(client, 1), len(server.requests)

    (failed,), requests = run(scenario())
    assert requests == 3  # the first attempt and two retries
    assert isinstance(failed, RequestFailed) and (failed.kind, failed.status) == ("http", 502)
    assert failed.reason == (
        "HTTP 502: 502 Bad Gateway 502 Bad Gateway Café & model are down nginx "
        "(gave up after 3 attempts)"
    )


@pytest.mark.parametrize(
    "body",
    [
        b"<html><body>Please log in</body></html>",
        b'{"choices": [{"message": {"content": "caf\xe9"}}]}',  # one Windows-1252 byte
        gzip.compress(b"<html>Sign in</html>"),  # gzip without Content-Encoding
        b'{"choices": []}',
        b'{"error": {"message": "upstream model crashed"}}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["html login", "non-utf-8 byte", "undeclared gzip", "no choices", "error", "deep"],
)
def test_a_200_that_is_no_answer_is_retried_then_a_sample_error(
    open_client: OpenClient, body: bytes
) -> None:
    async def scenario():
        reply = http("200 OK", body)
        async with Server(answer_with(reply)) as server, open_client(server.url) as client:
            return await send_all(client, 2), len(server.requests)

    seen, requests = run(scenario())
    assert requests == 6  # each of the 2 samples: 3 attempts
    for failed in seen:
        assert isinstance(failed, RequestFailed) and failed.kind == "malformed"
        assert failed.reason.startswith("malformed response: ")
        assert failed.reason.endswith("(gave up after 3 attempts)") and "\n" not in failed.reason
    if body.startswith(b"<html>"):
        assert "Please log in" in seen[0].reason  # type: ignore[union-attr]


def test_content_null_is_a_sample_error_not_a_wrong_answer(open_client: OpenClient) -> None:
    async def scenario():
        reply = http("200 OK", chat(None))
        async with Server(answer_with(reply)) as server, open_client(server.url) as client:
            return await send_all(client, 1), len(server.requests)

    (failed,), requests = run(scenario())
    assert isinstance(failed, RequestFailed) and failed.kind == "no_text"
    assert "message.content is null" in failed.reason
    assert requests == 1  # an answer, if not one to score: not retried
