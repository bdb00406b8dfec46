"""A loopback OpenAI-style endpoint for drivers that run a reference's own client: each
POSTed request body goes to `choose(body)`, which records it and returns the `choice`
to answer with (a chat `message` or a completion `text`)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def serve_replies(choose: Callable[[dict[str, Any]], dict[str, Any]]) -> ThreadingHTTPServer:
    """Start the endpoint on a free loopback port (`server.server_address[1]`); the caller
    shuts it down. `choose` is called under a lock, one request at a time."""
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                choice = choose(body)
            data = json.dumps(
                {
                    "id": "x",
                    "object": "chat.completion" if "message" in choice else "text_completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [choice],
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
