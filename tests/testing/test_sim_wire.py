"""The simulator's own HTTP/1.1 server, spoken to byte by byte over a raw socket."""

from __future__ import annotations

import json
import socket
from urllib.parse import urlsplit

from evalfleet.testing import Simulator

BODY = json.dumps({"model": "sim-model", "messages": [{"role": "user", "content": "hi"}]}).encode()


def _connect(sim: Simulator) -> socket.socket:
    url = urlsplit(sim.base_url)
    return socket.create_connection((url.hostname, url.port), timeout=5)


class _Replies:
    """Reads replies off a socket, keeping what arrived beyond the current one."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.data = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, f"connection closed mid-reply: {self.data!r}"
        self.data += chunk

    def next(self) -> tuple[str, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.data:
            self._fill()
        head = self.data.partition(b"\r\n\r\n")[0]
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        length = int(headers["content-length"])
        while len(self.data) - len(head) - 4 < length:
            self._fill()
        start = len(head) + 4
        body, self.data = self.data[start : start + length], self.data[start + length :]
        return status_line, headers, body


def _read_reply(sock: socket.socket) -> tuple[str, dict[str, str], bytes]:
    return _Replies(sock).next()


def _post(path: str, body: bytes, extra: str = "", version: str = "HTTP/1.1") -> bytes:
    return (
        f"POST {path} {version}\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_keep_alive_serves_many_requests_on_one_connection(sim: Simulator) -> None:
    with _connect(sim) as sock:
        for _ in range(3):
            sock.sendall(_post("/v1/chat/completions", BODY))
            status, headers, body = _read_reply(sock)
            assert status == "HTTP/1.1 200 OK"
            assert "connection" not in headers
            assert json.loads(body)["object"] == "chat.completion"
    assert sim.stats()["requests"] == 3


def test_two_requests_in_one_write_are_answered_in_order(sim: Simulator) -> None:
    with _connect(sim) as sock:
        sock.sendall(_post("/v1/chat/completions", BODY) + _post("/nowhere", b"{}"))
        replies = _Replies(sock)
        assert replies.next()[0] == "HTTP/1.1 200 OK"
        assert replies.next()[0] == "HTTP/1.1 404 Not Found"


def test_chunked_request_body(sim: Simulator) -> None:
    half = len(BODY) // 2
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (BODY[:half], BODY[half:]))
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    with _connect(sim) as sock:
        # byte by byte: the parser must wait for the whole body
        for i in range(0, len(request), 7):
            sock.sendall(request[i : i + 7])
        status, _, body = _read_reply(sock)
    assert status == "HTTP/1.1 200 OK", body


def test_connection_close_and_http_1_0_close_after_the_reply(sim: Simulator) -> None:
    for extra, version in (("Connection: close\r\n", "HTTP/1.1"), ("", "HTTP/1.0")):
        with _connect(sim) as sock:
            sock.sendall(_post("/v1/chat/completions", BODY, extra, version))
            status, headers, _ = _read_reply(sock)
            assert status == "HTTP/1.1 200 OK"
            assert headers["connection"] == "close"
            assert sock.recv(1) == b""  # the server closed its side


def test_malformed_request_line_gets_400_and_a_close(sim: Simulator) -> None:
    with _connect(sim) as sock:
        sock.sendall(b"GARBAGE\r\n\r\n")
        status, _, body = _read_reply(sock)
        assert status == "HTTP/1.1 400 Bad Request"
        assert "bad request line" in json.loads(body)["error"]["message"]
        assert sock.recv(1) == b""


def test_bad_content_length_gets_400(sim: Simulator) -> None:
    with _connect(sim) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: lots\r\n\r\n")
        assert _read_reply(sock)[0] == "HTTP/1.1 400 Bad Request"
