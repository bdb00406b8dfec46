"""What `EndpointClient` needs from a transport, and the types every transport shares.

A transport POSTs JSON bodies to the one URL it was built for and hands back the raw
answer; the client decides what a status means (retries, backoff, `Retry-After`). Two
implement it: `_http.FastTransport` (the lean default) and `_aiohttp.AiohttpTransport`
(behind proxies; aiohttp is imported only when that one is chosen, so this module must not
import it). Both are built as `Transport(url, headers, limit, timeout_s)` and both pass
`tests/engine/test_transport_conformance.py`, which states the contract below as tests.

The contract of `post(payload)`:
- Any HTTP status is returned as a `Response`, never raised: a 429 or 503 comes back with
  its body and its `Retry-After` header so the client can retry.
- The connection could not be made, or broke before a whole response arrived (refused,
  reset, a body shorter than its Content-Length): `TransportError`.
- No connection or no whole response within `timeout_s`: `asyncio.TimeoutError` (the
  builtin TimeoutError since Python 3.11), not `TransportError`, so the client can tell a
  slow endpoint from a broken one.
- At most `limit` connections are open at once; connections are kept alive and reused, and
  one the server closed while idle is not handed to a request.
- Left open (the transports differ): a reused connection that the server closes after the
  request went out, before a byte of answer. FastTransport sends the request again on a new
  connection; aiohttp raises `TransportError` (it resends no POST). The client retries a
  `TransportError`, so both end in an answer.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit


class TransportError(Exception):
    """The connection could not be made, or broke before a whole response arrived."""


@dataclass(frozen=True)
class Response:
    """One whole HTTP answer, whatever its status."""

    status: int
    body: bytes
    retry_after: str | None  # the raw Retry-After header, if any


class Transport(Protocol):
    """POSTs request bodies to one URL over a pool of keep-alive connections."""

    # A short name for logs and benchmarks ("evalfleet", "aiohttp").
    name: str

    async def post(self, payload: bytes) -> Response:
        """Send `payload` as the body of a POST; the whole response, whatever its status."""
        ...

    async def aclose(self) -> None:
        """Close every connection; the transport is not used afterwards."""
        ...


def with_url_credentials(url: str, headers: dict[str, str]) -> tuple[str, dict[str, str]]:
    """`user:password@` in the URL as HTTP Basic auth, as aiohttp reads it, unless the
    headers already authorize (the endpoint's API key wins); and the URL without them, so
    that no transport sends them anywhere else (Host, logs)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, headers
    bare = urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    if any(name.lower() == "authorization" for name in headers):
        return bare, headers
    pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    token = base64.b64encode(pair.encode()).decode("ascii")
    return bare, {**headers, "Authorization": f"Basic {token}"}
