"""The lean HTTP/1.1 transport against servers that answer in every legal way; HTTPS with a
private CA from the config to the request, end to end."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from evalfleet.engine._http import FastTransport, TransportError, proxy_applies
from evalfleet.engine.client import EndpointClient, RetryPolicy
from evalfleet.exceptions import ConfigError
from tests.engine.conftest import results_of, run_eval
from tests.engine.test_transport_conformance import make_certs

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


# --------------------------------------------------------------------------- HTTPS, end to end


@contextlib.contextmanager
def https_oracle(certs: Path) -> Iterator[str]:
    """An HTTPS chat endpoint on its own thread (the eval runs in another process) that
    answers the conftest's arithmetic prompts correctly; yields its base URL."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certs / "server.pem", certs / "server.key")
    loop = asyncio.new_event_loop()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                request = json.loads(await reader.readexactly(length))
                number = re.search(r"What is (\d+) plus one", json.dumps(request))
                text = f"It is {int(number.group(1)) + 1}." if number else "?"
                body = json.dumps(
                    {"choices": [{"message": {"content": text}, "finish_reason": "stop"}]}
                ).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
                await writer.drain()
        writer.close()

    server = loop.run_until_complete(asyncio.start_server(handle, "127.0.0.1", 0, ssl=context))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        server.close()
        loop.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certs(tmp_path_factory.mktemp("certs"))


@pytest.mark.parametrize("trust", ["ca_bundle", "verify_tls false", "none"])
def test_an_https_endpoint_with_a_private_ca_end_to_end(
    make_job, certs: Path, monkeypatch: pytest.MonkeyPatch, trust: str
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(certs / "other_ca.pem"))  # the system trusts no one
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("EVALFLEET_HTTP", "auto")
    with https_oracle(certs) as base_url:
        job = make_job(base_url, limit_samples=8)
        spec = json.loads(job.read_text())
        if trust == "ca_bundle":
            spec["endpoint"]["ca_bundle"] = str(certs / "ca.pem")
        elif trust == "verify_tls false":
            spec["endpoint"]["verify_tls"] = False
        job.write_text(json.dumps(spec))
        done = run_eval(job, timeout=120)
    warning = "TLS certificate verification is off for https://127.0.0.1:"
    assert (warning in done.stderr) == (trust == "verify_tls false")
    assert "Traceback" not in done.stderr
    if trust == "none":  # fatal at once: one line, not every sample's retries
        assert done.returncode != 0
        assert "TLS certificate verification failed for 127.0.0.1:" in done.stderr
        assert "ca_bundle" in done.stderr
        return
    assert done.returncode == 0, done.stderr
    assert results_of(job)["counts"]["errors"] == 0


CONFIG = """\
deployment: {{type: none}}
execution: {{type: local, output_dir: {out}}}
target:
  api_endpoint:
    url: https://gateway.example:8443/v1
    model_id: m
    {tls}
evaluation:
  tasks: [{{name: gsm8k}}]
"""


def test_ca_bundle_and_verify_tls_reach_job_json(write_yaml, tmp_path: Path) -> None:
    from evalfleet.config import load_config
    from evalfleet.planner import plan_invocation

    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    out = tmp_path / "out"
    path = write_yaml(CONFIG.format(out=out, tls=f"ca_bundle: {bundle}\n    verify_tls: false"))
    endpoint = plan_invocation(load_config(path).model, "abcd0123").jobs[0].spec["endpoint"]
    assert (endpoint["ca_bundle"], endpoint["verify_tls"]) == (str(bundle), False)
    # Unset, job.json is as it was: the system's trust, verified.
    path = write_yaml(CONFIG.format(out=out, tls=""), "plain.yaml")
    endpoint = plan_invocation(load_config(path).model, "abcd0124").jobs[0].spec["endpoint"]
    assert "ca_bundle" not in endpoint and "verify_tls" not in endpoint


def test_a_missing_ca_bundle_is_one_line_naming_the_key(write_yaml, tmp_path: Path) -> None:
    from evalfleet.config import load_config

    path = write_yaml(CONFIG.format(out=tmp_path, tls=f"ca_bundle: {tmp_path}/nope.pem"))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("target.api_endpoint.ca_bundle")
    assert "nope.pem" in caught.value.problems[0] and "no such file" in caught.value.problems[0]


def test_without_proxy_variables_urllib_is_not_loaded_to_say_so():
    """urllib.request (with http.client) would cost every run's start-up ~5 ms to find no
    proxy: with no *_proxy variable there is none to find on Linux."""
    script = (
        "import sys\n"
        "from evalfleet.engine._http import proxy_applies\n"
        "assert not proxy_applies('http://10.0.0.1:8000/v1')\n"
        "print('urllib.request' in sys.modules)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("True" if sys.platform in ("darwin", "win32") else "False")
