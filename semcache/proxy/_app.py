"""The proxy's ASGI application (Starlette): each request goes through the same caching transport
and flow as a client made by ``semcache.wrap()`` (``_wrap_transport`` / ``_wrap_flow``), so the
proxy and the wrapper share one cache path, one set of controls and one set of response headers."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from http import HTTPMethod
from typing import Any

import anyio.to_thread
import httpx2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from semcache._errors import ConfigurationError
from semcache._shell import AsyncCache, Cache
from semcache.accounting.stats import PROMETHEUS_CONTENT_TYPE
from semcache.openai._flow import Settings, _endpoint
from semcache.openai._transport import AsyncCachingTransport
from semcache.proxy._config import ProxyConfig, Refused, check_body, response_headers

log = logging.getLogger("semcache")

_METHODS = [m.value for m in HTTPMethod if m not in (HTTPMethod.CONNECT, HTTPMethod.TRACE)]


class Proxy:
    """One proxy: its configuration, its cache, and the HTTP client it reaches upstream with."""

    def __init__(self, config: ProxyConfig, cache: Cache | AsyncCache, *, own_cache: bool) -> None:
        self.config = config
        self.cache = cache
        self.own_cache = own_cache
        timeout = httpx2.Timeout(config.timeout, connect=min(config.timeout, 10.0))
        self.client = httpx2.AsyncClient(timeout=timeout, follow_redirects=False)
        # The proxy sets x-semcache-tenant itself (and refuses a client's own): it may choose it.
        settings = Settings(cache, config.defaults, config.record_usage, scope_override=True)
        self.transport = AsyncCachingTransport(self.client, settings)

    async def handle(self, request: Request) -> Response:
        """Any request but ``/healthz`` and ``/metrics``: through the cache flow, then upstream."""
        try:
            upstream = await self.transport.handle_async_request(await self._forward(request))
        except Refused as exc:
            return _refusal(exc)
        except ConfigurationError as exc:  # a bad x-semcache-* header or extra_body option
            return _refusal(Refused(400, str(exc), "invalid_semcache_option"))
        except httpx2.TimeoutException:
            return _refusal(Refused(504, "the upstream did not answer in time", "upstream_timeout"))
        except httpx2.TransportError as exc:
            log.warning("semcache proxy: upstream unreachable: %r", exc)
            return _refusal(Refused(502, "the upstream could not be reached", "upstream_error"))
        out = StreamingResponse(_relay(upstream), status_code=upstream.status_code)
        out.raw_headers = [
            (k.encode("latin-1"), v.encode("latin-1"))
            for k, v in response_headers(upstream.headers.multi_items())
        ]
        return out

    async def _forward(self, request: Request) -> httpx2.Request:
        body = await _read_body(request, self.config.max_body)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw]
        tenant = self.config.tenant({k.lower(): v for k, v in headers})
        url = self.config.target(request.url.path, request.url.query)
        forward = self.client.build_request(
            request.method, url, headers=self.config.forward_headers(headers, tenant), content=body
        )
        if _endpoint(forward) is not None:
            try:
                check_body(json.loads(body))
            except ValueError:
                raise Refused(400, "the request body is not valid JSON", "invalid_json") from None
            if "json" not in forward.headers.get("content-type", ""):
                forward.headers["content-type"] = "application/json"
        return forward

    async def health(self, request: Request) -> Response:
        """Always 200 while the proxy serves; ``cache`` says whether Redis is in the path."""
        state = "up" if self.cache.available else "stepping-aside"
        return JSONResponse({"status": "ok", "cache": state})

    async def metrics(self, request: Request) -> Response:
        """The cache's stats in the Prometheus text format (summed over every process; see README)."""
        if isinstance(self.cache, AsyncCache):
            stats = await self.cache.stats()
        else:
            stats = await anyio.to_thread.run_sync(self.cache.stats)
        return Response(stats.prometheus(), headers={"content-type": PROMETHEUS_CONTENT_TYPE})

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        if isinstance(self.cache, AsyncCache) and self.own_cache:
            await self.cache.connect()
        try:
            yield
        finally:
            await self.client.aclose()
            if self.own_cache:
                await _close(self.cache)


def build(config: ProxyConfig, cache: Cache | AsyncCache, *, own_cache: bool) -> Starlette:
    """The Starlette application of one proxy."""
    proxy = Proxy(config, cache, own_cache=own_cache)
    routes = [
        Route("/healthz", proxy.health, methods=[HTTPMethod.GET]),
        Route("/metrics", proxy.metrics, methods=[HTTPMethod.GET]),
        Route("/{path:path}", proxy.handle, methods=_METHODS),
    ]
    app = Starlette(routes=routes, lifespan=proxy.lifespan)
    app.state.proxy = proxy
    return app


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length", "")
    too_big = Refused(413, f"the request body is larger than {limit} bytes", "body_too_large")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


async def _relay(response: httpx2.Response) -> AsyncIterator[bytes]:
    # A hit or a buffered miss was built from its (decoded) body; a relayed upstream body streams
    # raw, as it keeps its content-encoding header.
    try:
        if response.is_stream_consumed:
            yield response.content
            return
        async for chunk in response.aiter_raw():
            yield chunk
    finally:
        await response.aclose()  # leaves the single flight of a streamed miss


def _refusal(exc: Refused) -> Response:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _close(cache: Cache | AsyncCache) -> None:
    if isinstance(cache, AsyncCache):
        await cache.aclose()
    else:
        await anyio.to_thread.run_sync(cache.close)
