"""Build a wrapped OpenAI client: a copy of the client whose HTTP client answers from the cache.

The copy is made with the SDK's own ``with_options(http_client=...)``, so it is a real ``OpenAI`` /
``AsyncOpenAI`` (or subclass): every resource, ``with_raw_response``, ``with_streaming_response``,
``.stream()``, ``.parse()`` and clients derived with ``with_options()`` go through the same HTTP
client, and the SDK itself parses cached answers into its own types. Its class is a subclass that
attaches :class:`~semcache.openai.CacheInfo` to every object parsed from a response the cache saw.
"""

from __future__ import annotations

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
) -> C:
    inner = getattr(client, "_client", None)
    ok = (isinstance(client, openai.AsyncOpenAI) and isinstance(inner, httpx2.AsyncClient)) or (
        isinstance(client, openai.OpenAI) and isinstance(inner, httpx2.Client)
    )
    if not ok or inner is None:
        raise TypeError(
            "semcache.wrap() takes an openai.OpenAI or openai.AsyncOpenAI client on an httpx2 "
            f"HTTP client, not {type(client).__name__}"
        )
    http = caching_client(inner, cache=cache, defaults=defaults, record_usage=record_usage)
    wrapped = client.with_options(http_client=http)  # type: ignore[attr-defined]
    wrapped.__class__ = _marking(type(client))
    return wrapped  # type: ignore[no-any-return]


def caching_client(
    inner: httpx2.Client | httpx2.AsyncClient,
    *,
    cache: Cache | AsyncCache | None,
    defaults: Mapping[str, Any],
    record_usage: bool,
) -> httpx2.Client | httpx2.AsyncClient:
    """An HTTP client that answers from the cache and sends the rest through ``inner``."""
    if isinstance(inner, httpx2.AsyncClient):
        settings = Settings(cache or AsyncCache(), defaults, record_usage)
        transport = AsyncCachingTransport(inner, settings)
        return httpx2.AsyncClient(transport=transport, timeout=inner.timeout)
    if isinstance(cache, AsyncCache):
        raise TypeError("a sync openai.OpenAI client needs a semcache.Cache, not an AsyncCache")
    settings = Settings(cache or Cache(), defaults, record_usage)
    return httpx2.Client(transport=CachingTransport(inner, settings), timeout=inner.timeout)


def default_http_client(*, asynchronous: bool) -> httpx2.Client | httpx2.AsyncClient:
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
