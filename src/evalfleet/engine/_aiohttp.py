"""The engine's fallback transport: an aiohttp session, used when a proxy applies to the
endpoint (aiohttp speaks to proxies; `_http.FastTransport` does not) or when
`EVALFLEET_HTTP=aiohttp` asks for it.

Imported only on that path: aiohttp takes ~150 ms to import, which every `evalfleet eval`
would otherwise pay.
"""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from evalfleet.engine.transport import (
    MAX_REDIRECTS,
    CertificateError,
    Response,
    TlsSettings,
    TransportError,
    certificate_failure,
    tls_context,
    with_url_credentials,
    with_user_agent,
)


class AiohttpTransport:
    """POSTs to one URL over an aiohttp session of at most `limit` connections."""

    name = "aiohttp"

    def __init__(
        self,
        url: str,
        headers: dict[str, str],
        limit: int,
        timeout_s: float,
        tls: TlsSettings | None = None,
    ) -> None:
        # aiohttp refuses URL credentials beside an Authorization header: one rule for both.
        url, headers = with_url_credentials(url, with_user_agent(headers))
        self.url = url
        # The proxy from HTTP(S)_PROXY / NO_PROXY (and its credentials from the URL or
        # .netrc), looked up once the way aiohttp's trust_env would: trust_env looks it up
        # again for every request, reading .netrc each time (~300 µs a request, measured).
        self._proxy: URL | None
        self._proxy_auth: aiohttp.BasicAuth | None
        try:
            self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(url))
        except LookupError:
            self._proxy, self._proxy_auth = None, None
        # Our own context, not aiohttp's: aiohttp builds its default one at import, so an
        # SSL_CERT_FILE set later would go unseen, and FastTransport's trust is the rule.
        context = tls_context(tls) if tls is not None or url.startswith("https:") else True
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=limit, limit_per_host=limit, ttl_dns_cache=300, ssl=context
            ),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        )

    async def post(self, payload: bytes) -> Response:
        try:
            async with self._session.post(
                self.url,
                data=payload,
                proxy=self._proxy,
                proxy_auth=self._proxy_auth,
                max_redirects=MAX_REDIRECTS,
            ) as reply:
                return Response(reply.status, await reply.read(), reply.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            raise  # some of aiohttp's timeouts are ClientErrors too: a timeout stays one
        except aiohttp.ClientConnectorCertificateError as exc:
            failure = exc.certificate_error
            if isinstance(failure, ssl.SSLCertVerificationError):
                raise CertificateError(certificate_failure(exc.host, exc.port, failure)) from None
            raise CertificateError(f"TLS certificate verification failed: {exc}") from None
        except aiohttp.TooManyRedirects as exc:  # its own message names no redirect
            last = exc.history[-1].headers.get("Location") if exc.history else None
            raise TransportError(
                f"too many redirects ({len(exc.history)}), the last to {last}"
            ) from None
        except aiohttp.ClientError as exc:
            raise TransportError(str(exc) or type(exc).__name__) from None

    async def aclose(self) -> None:
        await self._session.close()
