"""Build a wrapped OpenAI client: a copy of the client whose HTTP client answers from the cache.

The copy is made with the SDK's own ``with_options(http_client=...)``, so it is a real ``OpenAI`` /
``AsyncOpenAI`` (or subclass): every resource, ``with_raw_response``, ``with_streaming_response``,
``.stream()``, ``.parse()`` and clients derived with ``with_options()`` go through the same HTTP
client, and the SDK itself parses cached answers into its own types. Its class is a subclass that
attaches :class:`~semcache.openai.CacheInfo` to every object parsed from a response the cache saw.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any, TypeVar

import httpx2
import openai
import pydantic

from semcache._shell import AsyncCache, Cache
from semcache.openai._flow import Settings
from semcache.openai._options import CacheInfo
from semcache.openai._transport import AsyncCachingTransport, CachingTransport

C = TypeVar("C")

_MARKED: dict[type, type] = {}


def wrap_client(
    client: C,
    *,
    cache: Cache | AsyncCache | None,
    defaults: Mapping[str, Any],
    record_usage: bool,
    share_across_upstreams: bool = False,
    allow_scope_override: bool = False,
) -> C:
    inner = getattr(client, "_client", None)
    asynchronous = _asynchronous(inner)
    if asynchronous is None or not isinstance(
        client, openai.AsyncOpenAI if asynchronous else openai.OpenAI
    ):
        raise TypeError(
            "semcache.wrap() takes an openai.OpenAI or openai.AsyncOpenAI client (openai>=1.40, "
            f"on its own httpx or httpx2 HTTP client), not {type(client).__name__}"
            + (f" on {type(inner).__name__}" if inner is not None else "")
        )
    upstream = None if share_across_upstreams else str(getattr(client, "base_url", "")).rstrip("/")
    http = caching_client(
        inner, cache=cache, defaults=defaults, record_usage=record_usage, upstream=upstream,
        allow_scope_override=allow_scope_override,
    )  # fmt: skip
    wrapped: Any = client.with_options(http_client=http)
    wrapped.__class__ = _marking(type(client))
    return wrapped  # type: ignore[no-any-return]


def caching_client(
    inner: Any,
    *,
    cache: Cache | AsyncCache | None,
    defaults: Mapping[str, Any],
    record_usage: bool,
    upstream: str | None = None,
    allow_scope_override: bool = False,
) -> Any:
    """An HTTP client of ``inner``'s kind (httpx2 for openai 3.x, httpx before) that answers from
    the cache and sends the rest through ``inner``; its entries belong to ``upstream`` (None:
    shared), and a request may choose its tenant or namespace only with ``allow_scope_override``."""
    asynchronous = _asynchronous(inner)
    if asynchronous is None:
        raise TypeError(f"not an httpx or httpx2 client: {type(inner).__name__}")
    if not asynchronous and isinstance(cache, AsyncCache):
        raise TypeError("a sync openai.OpenAI client needs a semcache.Cache, not an AsyncCache")
    settings = Settings(
        cache or (AsyncCache() if asynchronous else Cache()), defaults, record_usage, upstream,
        allow_scope_override,
    )  # fmt: skip
    if isinstance(inner, httpx2.AsyncClient):
        return httpx2.AsyncClient(
            transport=AsyncCachingTransport(inner, settings), timeout=inner.timeout
        )
    if isinstance(inner, httpx2.Client):
        return httpx2.Client(transport=CachingTransport(inner, settings), timeout=inner.timeout)
    import httpx

    from semcache.openai import _httpx as _wrap_httpx

    if asynchronous:
        transport = _wrap_httpx.AsyncHttpxCachingTransport(inner, settings)
        return httpx.AsyncClient(transport=transport, timeout=inner.timeout)
    return httpx.Client(
        transport=_wrap_httpx.HttpxCachingTransport(inner, settings), timeout=inner.timeout
    )


def _asynchronous(inner: Any) -> bool | None:
    """True for an async HTTP client, False for a sync one, None for neither (httpx2 or httpx)."""
    if isinstance(inner, httpx2.AsyncClient):
        return True
    if isinstance(inner, httpx2.Client):
        return False
    httpx = sys.modules.get("httpx")  # only present when something (openai < 3) imported it
    if httpx is not None and isinstance(inner, httpx.AsyncClient):
        return True
    if httpx is not None and isinstance(inner, httpx.Client):
        return False
    return None


def default_http_client(*, asynchronous: bool) -> Any:
    """openai's own default HTTP client (its timeouts, limits and redirects)."""
    return openai.DefaultAsyncHttpxClient() if asynchronous else openai.DefaultHttpxClient()


def _marking(cls: type) -> type:
    """A subclass of ``cls`` (same name) that marks what it parses with the response's CacheInfo."""
    if cls in _MARKED:
        return _MARKED[cls]

    def _process_response_data(self: Any, *, data: object, cast_to: Any, response: Any) -> Any:
        parsed = cls._process_response_data(  # type: ignore[attr-defined]
            self, data=data, cast_to=cast_to, response=response
        )
        info = CacheInfo.from_headers(response.headers)
        if info is not None and isinstance(parsed, pydantic.BaseModel):
            # Not a field: model_dump(), equality and repr stay exactly as the SDK made them.
            object.__setattr__(parsed, "semcache", info)
        return parsed

    attrs = {"_process_response_data": _process_response_data, "__module__": cls.__module__,
             "__qualname__": cls.__qualname__}  # fmt: skip
    marked = type(cls.__name__, (cls,), attrs)
    _MARKED[cls] = marked
    return marked
