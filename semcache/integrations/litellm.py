"""semcache as LiteLLM's response cache: ``litellm.cache = SemcacheLiteLLMCache(cache)``.

Example::

    import litellm, semcache
    from semcache.integrations.litellm import SemcacheLiteLLMCache

    litellm.cache = SemcacheLiteLLMCache(semcache.Cache(namespace="app"))
    reply = litellm.completion(model="openai/gpt-4o-mini", messages=[...])
    reply._hidden_params["cache_hit"]        # True on a hit; LiteLLM then bills it at 0

LiteLLM's own cache path runs around it, so its conventions hold: ``cache={"no-cache": True}`` answers
from upstream (and, unless ``"no-store"``, refreshes the entry), ``cache={"no-store": True}``
stores nothing, ``cache={"ttl": 60}`` sets the entry's lifetime, ``cache={"s-maxage": 600}`` takes
only entries younger than that; none of it is sent upstream. semcache sees the whole request, so
a paraphrase is a semantic hit inside the same model and parameters (the similarity goes to
``metadata["semantic-similarity"]`` when the call has a metadata dict). Chat completions
(``completion`` / ``acompletion``, streamed or not) are cached. Tenants and other options come from
the constructor and from :func:`semcache.openai.cache_options` blocks. Needs ``semcache[litellm]``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Unpack

from semcache._errors import InvalidRequestError, missing_extra
from semcache.openai._options import Options, RequestOptions, check_options, resolve

try:
    from litellm.caching.caching import Cache as LiteLLMCache
    from litellm.types.caching import LiteLLMCacheType
    from openai.types.chat.completion_create_params import CompletionCreateParamsBase
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("litellm", "litellm") from exc

from semcache._shell import AsyncCache, Cache
from semcache.core.plan import Plan
from semcache.openai._flow import complete_body

__all__ = ["SemcacheLiteLLMCache"]

#: The request fields that go into semcache's key: the OpenAI chat completions parameters.
_FIELDS = frozenset(CompletionCreateParamsBase.__annotations__)


class SemcacheLiteLLMCache(LiteLLMCache):
    """LiteLLM's ``Cache`` on a :class:`semcache.Cache` (or :class:`semcache.AsyncCache`).

    Args:
        cache: a ``Cache`` serves ``completion`` and ``acompletion`` (the latter in a worker
            thread); an ``AsyncCache`` only ``acompletion``.
        defaults: :class:`semcache.openai.Options` for every call (``tenant``, ``ttl``, ...).
    """

    def __init__(self, cache: Cache | AsyncCache, **defaults: Unpack[Options]) -> None:
        check_options(defaults)
        super().__init__(
            type=LiteLLMCacheType.LOCAL, supported_call_types=["completion", "acompletion"]
        )
        self.semcache = cache
        self.defaults = dict(defaults)

    def get_cache(self, dynamic_cache_object: Any = None, **kwargs: Any) -> Any:
        """The stored response body for a call, or None (LiteLLM turns it into a ModelResponse)."""
        options, plan = self._plan(kwargs)
        if plan is None or options.bypass or not self.should_use_cache(**kwargs):  # type: ignore[no-untyped-call]
            return None
        return _found(self._sync().lookup_plan(plan), kwargs)

    async def async_get_cache(self, dynamic_cache_object: Any = None, **kwargs: Any) -> Any:
        if not isinstance(self.semcache, AsyncCache):
            return await asyncio.to_thread(self.get_cache, **kwargs)
        options, plan = self._plan(kwargs)
        if plan is None or options.bypass or not self.should_use_cache(**kwargs):  # type: ignore[no-untyped-call]
            return None
        return _found(await self.semcache.lookup_plan(plan), kwargs)

    def add_cache(self, result: Any, **kwargs: Any) -> None:
        """Store a complete response (LiteLLM has already checked ``no-store``)."""
        options, plan = self._plan(kwargs)
        body = _body(result)
        if plan is not None and body is not None and not options.no_store:
            self._sync().store_plan(plan, body, ttl=_ttl(options, kwargs), tags=options.tags)

    async def async_add_cache(
        self, result: Any, dynamic_cache_object: Any = None, **kwargs: Any
    ) -> None:
        if not isinstance(self.semcache, AsyncCache):
            return await asyncio.to_thread(self.add_cache, result, **kwargs)
        options, plan = self._plan(kwargs)
        body = _body(result)
        if plan is not None and body is not None and not options.no_store:
            ttl = _ttl(options, kwargs)
            await self.semcache.store_plan(plan, body, ttl=ttl, tags=options.tags)

    def _sync(self) -> Cache:
        if isinstance(self.semcache, AsyncCache):
            raise TypeError(
                "this SemcacheLiteLLMCache holds an AsyncCache: call litellm.acompletion, or give "
                "it a semcache.Cache"
            )
        return self.semcache

    def _plan(self, kwargs: Mapping[str, Any]) -> tuple[RequestOptions, Plan | None]:
        options = resolve(self.defaults, {}, {})
        request = {k: v for k, v in kwargs.items() if k in _FIELDS and v is not None}
        try:
            plan = self.semcache.plan(
                request, tenant=options.tenant, namespace=options.namespace,
                threshold=options.threshold,
            )  # fmt: skip
        except InvalidRequestError:
            return options, None
        return options, plan


def _found(result: Any, kwargs: Mapping[str, Any]) -> dict[str, Any] | None:
    if not result.hit or result.response is None:
        return None
    control = kwargs.get("cache") or {}
    max_age = control.get("s-maxage", control.get("s-max-age"))
    created = result.entry.created_at if result.entry is not None else None
    if max_age is not None and created is not None and time.time() - created > float(max_age):
        return None
    metadata = kwargs.get("metadata")
    if isinstance(metadata, dict) and result.similarity is not None:
        metadata["semantic-similarity"] = result.similarity
    return dict(result.response)


def _body(result: Any) -> dict[str, Any] | None:
    """A complete chat completion as a plain body; None for anything else (not stored).

    LiteLLM hands over a ModelResponse, or on its async path the response already as JSON."""
    if isinstance(result, str):
        return complete_body("chat", result.encode())
    dump = getattr(result, "model_dump_json", None)
    if dump is None:
        return None
    return complete_body("chat", dump(exclude_none=True).encode())


def _ttl(options: RequestOptions, kwargs: Mapping[str, Any]) -> Any:
    control = kwargs.get("cache") or {}
    return control["ttl"] if control.get("ttl") is not None else options.ttl
