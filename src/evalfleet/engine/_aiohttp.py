"""The engine's fallback transport: an aiohttp session, used when a proxy applies to the
endpoint (aiohttp speaks to proxies; `_http.FastTransport` does not) or when
`EVALFLEET_HTTP=aiohttp` asks for it.

Imported only on that path: aiohttp takes ~150 ms to import, which every `evalfleet eval`
would otherwise pay.
"""

from __future__ import annotations

import aiohttp

from evalfleet.engine._http import Response, TransportError


class AiohttpTransport:
    """POSTs to one URL over an aiohttp session of at most `limit` connections."""

    def __init__(self, url: str, headers: dict[str, str], limit: int, timeout_s: float) -> None:
        self.url = url
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=limit, limit_per_host=limit, ttl_dns_cache=300),
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            skip_auto_headers=("User-Agent",),
            trust_env=True,  # HTTP(S)_PROXY and NO_PROXY: the reason this path exists
        )

    async def post(self, payload: bytes) -> Response:
        try:
            async with self._session.post(self.url, data=payload) as reply:
                return Response(reply.status, await reply.read(), reply.headers.get("Retry-After"))
        except aiohttp.ClientError as exc:
            raise TransportError(str(exc) or type(exc).__name__) from None

    async def aclose(self) -> None:
        await self._session.close()
