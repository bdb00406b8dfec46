"""What `EndpointClient` needs from a transport, and the types every transport shares.

A transport POSTs JSON bodies to the one URL it was built for and hands back the raw
answer; the client decides what a status means (retries, backoff, `Retry-After`). Two
implement it: `_http.FastTransport` (the lean default) and `_aiohttp.AiohttpTransport`
(behind proxies; aiohttp is imported only when that one is chosen, so this module must not
import it). Both are built as `Transport(url, headers, limit, timeout_s, tls=None)` and both
pass `tests/engine/test_transport_conformance.py`, which states the contract below as tests.

The contract of `post(payload)`:
- Any final HTTP status is returned as a `Response`, never raised: a 429 or 503 comes back
  with its body and its `Retry-After` header so the client can retry. Interim answers (100
  Continue, 103 Early Hints) are skipped; a 204 or 304 has no body whatever its headers say.
- The body is handed back decoded: `Accept-Encoding: gzip, deflate` goes out and a gzip or
  deflate `Content-Encoding` is undone. Every request carries `User-Agent: evalfleet/<version>`
  unless the caller's headers name one.
- Redirects are followed as aiohttp follows them: 301/302 of a POST, and any 303, become a
  GET without a body; 307/308 resend the POST with its body; the Authorization header is
  dropped once a redirect leaves the URL's origin (scheme, host, port); the 10th redirect in
  a row is a `TransportError`; a redirect without `Location` is returned as the answer.
- The connection could not be made, or broke before a whole response arrived (refused,
  reset, a body shorter than its Content-Length, a response that is not legal HTTP/1.1 as
  llhttp reads it: a duplicate or non-numeric Content-Length, Content-Length beside chunked
  Transfer-Encoding, a body that does not decompress): `TransportError`, at once.
- The server's certificate failed verification: `CertificateError`, a `TransportError` the
  client treats as fatal (retrying cannot fix it). `TlsSettings` says whom to trust: the
  system store (which honours `SSL_CERT_FILE`), a CA bundle file, or no one (insecure).
- No connection or no whole response within `timeout_s`: `asyncio.TimeoutError` (the
  builtin TimeoutError since Python 3.11), not `TransportError`, so the client can tell a
  slow endpoint from a broken one. A body that stalls halfway times out the same way.
- At most `limit` connections are open at once; connections are kept alive and reused, and
  one the server closed while idle is not handed to a request.
- Left open (the transports differ):
  - a reused connection that the server closes after the request went out, before a byte
    of answer. FastTransport sends the request again on a new connection; aiohttp raises
    `TransportError` (it resends no POST). The client retries a `TransportError`, so both
    end in an answer.
  - the deadline of a redirected request: aiohttp's covers the whole chain; FastTransport
    gives the first answer `timeout_s` and the rest of the chain `timeout_s` more.
"""

from __future__ import annotations

import base64
import ssl
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote, urlsplit, urlunsplit

from evalfleet import __version__

USER_AGENT = f"evalfleet/{__version__}"
# The 10th redirect in a row is an error, as aiohttp's default max_redirects has it.
MAX_REDIRECTS = 10


class TransportError(Exception):
    """The connection could not be made, or broke before a whole response arrived."""


class CertificateError(TransportError):
    """The server's TLS certificate failed verification: no retry will mend it."""


@dataclass(frozen=True)
class TlsSettings:
    """Whom an https endpoint must prove itself to. Default: the system's trust store,
    which honours `SSL_CERT_FILE`/`SSL_CERT_DIR`."""

    ca_bundle: str | None = None  # a PEM file of CAs to trust instead of the system's
    insecure: bool = False  # no verification at all (target.api_endpoint.verify_tls: false)


def tls_context(tls: TlsSettings | None) -> ssl.SSLContext:
    """The SSLContext for `tls`; TransportError if the CA bundle cannot be loaded."""
    tls = tls or TlsSettings()
    if tls.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    try:
        # `cafile` replaces the system store, as curl's --cacert and requests' verify= do.
        return ssl.create_default_context(cafile=tls.ca_bundle)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise TransportError(
            f"cannot load the CA bundle {tls.ca_bundle}: {getattr(exc, 'strerror', None) or exc}"
        ) from None


def certificate_failure(host: str, port: int | None, exc: ssl.SSLCertVerificationError) -> str:
    """One line for a failed verification, the same from both transports."""
    reason = exc.verify_message or exc.reason or str(exc)
    return (
        f"TLS certificate verification failed for {host}:{port}: {reason} (trust its CA "
        "with target.api_endpoint.ca_bundle or SSL_CERT_FILE)"
    )


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


def with_user_agent(headers: dict[str, str]) -> dict[str, str]:
    """`headers` with `User-Agent: evalfleet/<version>` unless they name one: some WAF
    rules block requests without it."""
    if any(name.lower() == "user-agent" for name in headers):
        return headers
    return {**headers, "User-Agent": USER_AGENT}


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
