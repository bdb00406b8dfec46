"""The engine's fallback transport: an aiohttp session, used when a proxy applies to the
endpoint (aiohttp speaks to proxies; `_http.FastTransport` does not) or when
`EVALFLEET_HTTP=aiohttp` asks for it.

Imported only on that path: aiohttp takes ~150 ms to import, which every `evalfleet eval`
would otherwise pay.
"""

from __future__ import annotations

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from evalfleet.engine.transport import Response, TransportError, with_url_credentials


class AiohttpTransport:
    """POSTs to one URL over an aiohttp session of at most `limit` connections."""

    name = "aiohttp"

    def __init__(self, url: str, headers: dict[str, str], limit: int, timeout_s: float) -> None:
        # aiohttp refuses URL credentials beside an Authorization header: one rule for both.
        url, headers = with_url_credentials(url, headers)
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
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            skip_auto_headers=("User-Agent",),
        )

    async def post(self, payload: bytes) -> Response:
        try:
            async with self._session.post(
                self.url, data=payload, proxy=self._proxy, proxy_auth=self._proxy_auth
            ) as reply:
                return Response(reply.status, await reply.read(), reply.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            raise TransportError(str(exc) or type(exc).__name__) from None

    async def aclose(self) -> None:
        await self._session.close()
