"""The lean HTTP/1.1 transport against servers that answer in every legal way."""

from __future__ import annotations

import asyncio

import pytest

from evalfleet.engine._http import FastTransport, TransportError, proxy_applies
from evalfleet.engine.client import EndpointClient, RetryPolicy

BODY = b'{"choices":[{"message":{"content":"hi"}}]}'


def serve(responses: list[bytes], close_after: set[int] = frozenset()):
    """A raw server answering request i with responses[i % len]; closes after those in close_after."""

    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
            except (asyncio.IncompleteReadError, ConnectionError):
                writer.close()
                return
            index = len(seen)
            seen.append(head + body)
            writer.write(responses[index % len(responses)])
            await writer.drain()
            if index in close_after:
                writer.close()
                return

    return handle, seen


async def exchange(responses, count=3, close_after=frozenset()):
    handle, seen = serve(responses, set(close_after))
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    transport = FastTransport(
        f"http://127.0.0.1:{port}/v1/chat/completions", {"Content-Type": "application/json"}, 4, 5
    )
    try:
        results = [await transport.post(b'{"q":%d}' % i) for i in range(count)]
    finally:
        transport.close()
        await asyncio.sleep(0.05)  # let the server's handlers see the close and finish
        server.close()
        await server.wait_closed()
    return results, seen


def test_content_length_keep_alive_reuses_one_connection():
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    results, seen = asyncio.run(exchange([response]))
    assert [r.body for r in results] == [BODY] * 3 and [r.status for r in results] == [200] * 3
    assert seen[0].startswith(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:")
    assert seen[2].endswith(b'{"q":2}')


def test_chunked_body_and_retry_after_header():
    response = (
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\n" + BODY[:5] + b"\r\n" + (b"%x\r\n" % len(BODY[5:])) + BODY[5:] + b"\r\n0\r\n\r\n"
    )
    results, _ = asyncio.run(exchange([response]))
    assert all(r.body == BODY and r.status == 429 and r.retry_after == "7" for r in results)


def test_connection_close_and_close_delimited_bodies():
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s" % (
        len(BODY),
        BODY,
    )
    results, seen = asyncio.run(exchange([closing], close_after={0, 1, 2}))
    assert [r.body for r in results] == [BODY] * 3 and len(seen) == 3
    no_length = b"HTTP/1.0 200 OK\r\n\r\n" + BODY
    results, _ = asyncio.run(exchange([no_length], close_after={0, 1, 2}))
    assert [r.body for r in results] == [BODY] * 3


def test_a_kept_alive_connection_the_server_dropped_is_replaced():
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)

    async def scenario():
        handle, seen = serve([response], close_after=set())
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        transport = FastTransport(f"http://127.0.0.1:{port}/x", {}, 2, 5)
        first = await transport.post(b"{}")
        server.close()
        for connection in transport._idle:  # the server side goes away while idle
            connection.transport.close()
        await asyncio.sleep(0.05)
        server2 = await asyncio.start_server(handle, "127.0.0.1", port)
        second = await transport.post(b"{}")
        transport.close()
        await asyncio.sleep(0.05)
        server2.close()
        await server2.wait_closed()
        await server.wait_closed()
        return first, second, len(seen)

    first, second, requests = asyncio.run(scenario())
    assert first.body == second.body == BODY and requests == 2


def test_garbage_and_refused_connections_are_transport_errors():
    with pytest.raises(TransportError, match="not an HTTP response"):
        asyncio.run(exchange([b"SSH-2.0-OpenSSH\r\n\r\n"], count=1))
    transport = FastTransport("http://127.0.0.1:9/", {}, 1, 5)
    with pytest.raises(TransportError, match=r"cannot connect to 127\.0\.0\.1:9"):
        asyncio.run(transport.post(b"{}"))


def test_proxy_settings_route_to_aiohttp(monkeypatch):
    monkeypatch.setenv("http_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "localhost")
    assert proxy_applies("http://api.example.com/v1")
    assert not proxy_applies("http://localhost:8000/v1")
    monkeypatch.delenv("http_proxy")
    assert not proxy_applies("http://api.example.com/v1")


def test_an_endpoint_behind_a_proxy_is_reached_through_the_proxy(monkeypatch):
    """The engine's aiohttp path must actually use HTTP_PROXY, not only be chosen for it."""
    for name in ("no_proxy", "NO_PROXY", "HTTP_PROXY", "EVALFLEET_HTTP"):
        monkeypatch.delenv(name, raising=False)
    answer = b'{"choices":[{"message":{"content":"via proxy"},"finish_reason":"stop"}]}'
    response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer)

    async def scenario():
        handle, seen = serve([response])
        proxy = await asyncio.start_server(handle, "127.0.0.1", 0)
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{proxy.sockets[0].getsockname()[1]}")
        url = "http://endpoint.invalid:8000/v1/chat/completions"  # resolvable by the proxy only
        client = EndpointClient(
            url, api_key=None, parallelism=2, timeout_s=5, retry=RetryPolicy(max_retries=0)
        )
        async with client:
            reply = await client.send(b'{"model":"m"}')
            name = client.transport_name
        proxy.close()
        await proxy.wait_closed()
        return reply, name, seen

    reply, name, seen = asyncio.run(scenario())
    assert name == "aiohttp" and reply.text == "via proxy"
    assert seen[0].startswith(b"POST http://endpoint.invalid:8000/v1/chat/completions HTTP/1.1")
