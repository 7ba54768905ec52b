"""Drop-in caching for OpenAI clients (and any OpenAI-compatible server reached through them).

Example::

    import openai, semcache
    client = semcache.wrap(openai.OpenAI(), cache=semcache.Cache())
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[...])   # unchanged call
    semcache.openai.cache_info(reply)    # CacheInfo(layer='exact', similarity=1.0, ...) or a miss

    aclient = semcache.wrap(openai.AsyncOpenAI(), cache=semcache.AsyncCache())

Covered: ``chat.completions.create``, ``completions.create``, ``responses.create`` (streamed or not)
and ``embeddings.create`` (per input, through the embedding cache). Everything else goes upstream
untouched. Per-request control: :class:`Options` through ``extra_body={"semcache": {...}}``,
``extra_headers={"x-semcache-...": ...}`` or the :func:`cache_options` context manager.
Importing this module does not import ``openai``; :func:`wrap` needs it (``semcache[openai]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, Unpack

from semcache._errors import missing_extra
from semcache.openai._options import CacheInfo as CacheInfo
from semcache.openai._options import Options as Options
from semcache.openai._options import cache_options as cache_options
from semcache.openai._options import check_options

if TYPE_CHECKING:
    from semcache._shell import AsyncCache, Cache

__all__ = [
    "CacheInfo",
    "Options",
    "async_http_client",
    "cache_info",
    "cache_options",
    "http_client",
    "wrap",
]

C = TypeVar("C")


def wrap(
    client: C,
    *,
    cache: Cache | AsyncCache | None = None,
    record_usage: bool = True,
    share_across_upstreams: bool = False,
    allow_scope_override: bool = False,
    **defaults: Unpack[Options],
) -> C:
    """Return a copy of an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client that answers from the
    cache. The copy is a real client of the same type; the original is left as it was, and the copy
    takes over its connection pool (closing the copy closes it).

    Args:
        client: the client to wrap (any base URL: OpenAI, Azure, vLLM, Ollama, ...).
        cache: a :class:`semcache.Cache` (sync clients) or :class:`semcache.AsyncCache` (async clients;
            a sync ``Cache`` also works there, run in a worker thread). Default: a new one.
        record_usage: when a streamed miss did not ask for usage, ask upstream for it anyway (and hide
            it from the caller), so the stored entry carries token usage. Turn off for servers that
            reject ``stream_options``.
        share_across_upstreams: entries belong to the client's base URL, so clients of different
            servers never answer each other's calls; True shares them with every client of the
            cache and with direct ``Cache`` calls (one model behind several URLs, ``semcache warm``).
        allow_scope_override: let a request choose its ``tenant`` / ``namespace`` through
            ``x-semcache-*`` headers or ``extra_body``; off, such a request goes upstream uncached
            (headers may carry what an end user sent).
        defaults: :class:`Options` applied to every call (``tenant="acme"``, ``ttl=600``, ...).

    Returns hits with the real SDK types (``ChatCompletion``, ``Stream[ChatCompletionChunk]``, ...);
    read how a call was answered with :func:`cache_info`.

    Example::

        client = semcache.wrap(openai.OpenAI(), cache=semcache.Cache(), tenant="acme")
    """
    check_options(defaults)
    wrap_client = _client_module().wrap_client
    return wrap_client(  # type: ignore[no-any-return]
        client, cache=cache, defaults=dict(defaults), record_usage=record_usage,
        share_across_upstreams=share_across_upstreams, allow_scope_override=allow_scope_override,
    )  # fmt: skip


def http_client(
    cache: Cache | None = None, *, record_usage: bool = True, **defaults: Unpack[Options]
) -> Any:
    """A caching HTTP client for anything that builds its own ``openai.OpenAI`` from one, such as
    LangChain's ``ChatOpenAI(http_client=...)``: openai's default HTTP client with the cache of
    :func:`wrap` under it (same arguments).

    Example::

        llm = ChatOpenAI(model="gpt-4o-mini", http_client=semcache.openai.http_client(cache),
                         include_response_headers=True)
        llm.invoke("Hi").response_metadata["headers"]["x-semcache-layer"]   # "exact" on a hit
    """
    return _http_client(cache, record_usage, defaults, asynchronous=False)


def async_http_client(
    cache: AsyncCache | Cache | None = None,
    *,
    record_usage: bool = True,
    **defaults: Unpack[Options],
) -> Any:
    """The async twin of :func:`http_client` (``ChatOpenAI(http_async_client=...)``)."""
    return _http_client(cache, record_usage, defaults, asynchronous=True)


def _http_client(
    cache: Cache | AsyncCache | None,
    record_usage: bool,
    defaults: Mapping[str, Any],
    *,
    asynchronous: bool,
) -> Any:
    check_options(defaults)
    module = _client_module()
    inner = module.default_http_client(asynchronous=asynchronous)
    return module.caching_client(
        inner, cache=cache, defaults=dict(defaults), record_usage=record_usage
    )


def _client_module() -> Any:
    try:
        from semcache.openai import _client
    except ImportError as exc:
        if exc.name not in ("openai", "anyio", "httpx2"):
            raise
        raise missing_extra("openai", "openai") from exc
    return _client


def cache_info(obj: object) -> CacheInfo | None:
    """How the cache answered a call made through a wrapped client; None for objects it never saw.

    Works on what the SDK returns: a parsed response (``ChatCompletion``, ``Response``, ...), each
    chunk or event of a stream, a ``Stream`` / ``AsyncStream``, the ``with_raw_response`` /
    ``with_streaming_response`` wrappers and a bare ``httpx2.Response``. Parsed objects also carry it
    as the attribute ``semcache`` (not a model field: ``model_dump()`` and equality are unchanged).

    Example::

        info = semcache.openai.cache_info(reply)
        if info and info.hit:
            print(info.layer, info.similarity)
    """
    info = getattr(obj, "semcache", None)
    if isinstance(info, CacheInfo):
        return info
    for holder in (obj, getattr(obj, "http_response", None), getattr(obj, "response", None)):
        headers = getattr(holder, "headers", None)
        if isinstance(headers, Mapping):
            return CacheInfo.from_headers(_lower(headers))
    return None


def _lower(headers: Mapping[str, Any]) -> Mapping[str, str]:
    # httpx2 headers are case-insensitive already; plain dicts are not.
    if hasattr(headers, "multi_items"):
        return headers
    return {str(k).lower(): str(v) for k, v in headers.items()}
