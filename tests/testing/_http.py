"""Small HTTP clients for the simulator tests: urllib for one request, aiohttp for many."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes
    elapsed: float = 0.0
    error: str | None = None
    """The exception's class name when no response arrived (a dropped connection)."""

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    base_url: str,
    path: str,
    body: Any = None,
    *,
    method: str | None = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
    timeout: float = 10.0,
) -> Reply:
    """One request; `body` is sent as JSON (POST), `raw` as is; HTTP errors are replies too."""
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        base_url + path,
        data=data,
        method=method or ("GET" if data is None else "POST"),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            return Reply(resp.status, dict(resp.headers), resp.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, dict(exc.headers), exc.read())


def chat(content: str, **params: Any) -> dict[str, Any]:
    """A chat request body with one user message."""
    return {"model": "sim-model", "messages": [{"role": "user", "content": content}], **params}


@dataclass
class Many:
    replies: list[Reply] = field(default_factory=list)
    elapsed: float = 0.0


async def _post_many(
    base_url: str, path: str, bodies: Sequence[Any], concurrency: int, timeout: float
) -> Many:
    loop = asyncio.get_running_loop()
    sem = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    client_timeout = aiohttp.ClientTimeout(total=timeout)

    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one(body: Any) -> Reply:
            async with sem:
                start = loop.time()
                try:
                    async with session.post(base_url + path, json=body) as resp:
                        data = await resp.read()
                        return Reply(resp.status, dict(resp.headers), data, loop.time() - start)
                except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                    return Reply(0, {}, b"", loop.time() - start, type(exc).__name__)

        start = loop.time()
        replies = await asyncio.gather(*(one(b) for b in bodies))
        return Many(list(replies), loop.time() - start)


def post_many(
    base_url: str,
    bodies: Sequence[Any],
    *,
    path: str = "/v1/chat/completions",
    concurrency: int = 64,
    timeout: float = 30.0,
) -> Many:
    """POST every body, `concurrency` at a time, each on its own pooled aiohttp connection."""
    return asyncio.run(_post_many(base_url, path, bodies, concurrency, timeout))
