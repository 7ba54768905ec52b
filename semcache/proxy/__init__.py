"""An OpenAI-compatible caching HTTP gateway: ``semcache proxy --upstream URL``, or in Python.

Any client that speaks the OpenAI API (Node, Go, curl, a LiteLLM proxy, ...) points its base URL at
the proxy (``http://127.0.0.1:8080/v1``) and gets semcache's exact and semantic layers in front of
the upstream. Requests go through the same caching flow as ``semcache.wrap()``: chat completions,
completions, responses (streamed as server-sent events or not) and embeddings are cached; every other
path passes through untouched, and the upstream's errors come back as they were.

Per request: ``Cache-Control: no-cache`` (answer from upstream, refresh the entry), ``no-store``,
and the ``x-semcache-*`` headers of ``semcache.openai`` (``x-semcache-ttl``, ``-threshold``, ...).
Each answer carries ``x-semcache-layer`` / ``-similarity`` / ``-key`` and Portkey's
``x-portkey-cache-status: HIT | SEMANTIC HIT | MISS | REFRESH | DISABLED``. ``/healthz`` and
``/metrics`` (Prometheus text) are the proxy's own.

Example::

    from semcache.proxy import ProxyConfig, serve
    serve(ProxyConfig(upstream="https://api.openai.com/v1", tenant_header="x-tenant"), port=8080)

Needs ``semcache[proxy]`` (Starlette and uvicorn).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semcache.proxy._config import ProxyConfig as ProxyConfig

if TYPE_CHECKING:
    from semcache._shell import AsyncCache, Cache

__all__ = ["ProxyConfig", "create_app", "serve"]


def create_app(
    config: ProxyConfig, *, cache: Cache | AsyncCache | None = None, own_cache: bool = False
) -> Any:
    """The proxy as an ASGI application (a Starlette app), for any ASGI server.

    Args:
        config: upstream, tenants, limits (:class:`ProxyConfig`).
        cache: the cache to answer from: an :class:`~semcache.AsyncCache` (native) or a
            :class:`~semcache.Cache` (run in worker threads). Default: a new ``AsyncCache`` on the
            embedded local Redis, owned by the app.
        own_cache: close ``cache`` when the app shuts down.

    Example::

        app = create_app(ProxyConfig(upstream="http://127.0.0.1:8000/v1"), cache=AsyncCache())
        # uvicorn module:app
    """
    try:
        from semcache.proxy._app import build
    except ImportError as exc:
        if exc.name not in ("starlette", "httpx2", "openai", "anyio"):
            raise
        from semcache._errors import missing_extra

        raise missing_extra(exc.name or "starlette", "proxy") from exc
    if cache is None:
        from semcache._shell import AsyncCache

        cache, own_cache = AsyncCache(), True
    return build(config, cache, own_cache=own_cache)


def serve(
    config: ProxyConfig,
    *,
    host: str = "127.0.0.1",
    port: int = 8080,
    cache: Cache | AsyncCache | None = None,
    own_cache: bool = False,
    log_level: str = "info",
) -> None:
    """Run the proxy on uvicorn until interrupted (arguments as in :func:`create_app`)."""
    try:
        import uvicorn
    except ImportError as exc:
        from semcache._errors import missing_extra

        raise missing_extra("uvicorn", "proxy") from exc
    app = create_app(config, cache=cache, own_cache=own_cache)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
