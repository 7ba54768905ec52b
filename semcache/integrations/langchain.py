"""semcache as LangChain's LLM cache: exact and semantic hits for any chat model or LLM.

Example::

    from langchain_core.globals import set_llm_cache
    import semcache
    from semcache.integrations.langchain import SemcacheLangChainCache

    set_llm_cache(SemcacheLangChainCache(semcache.Cache(namespace="app"), tenant="acme"))
    reply = ChatOpenAI(model="gpt-4o-mini").invoke("What is Redis?")
    reply.response_metadata.get("semcache")    # {"layer": "exact", "similarity": 1.0, ...} on a hit

The prompt LangChain hands over (its serialised messages) becomes a chat request for the cache: the
last user turn is the semantic text and everything else, the model's whole configuration string
included, is in the scope, so two models or two settings never share an entry. Tenants, TTL,
thresholds and bypass come from the constructor's defaults and from
:func:`semcache.openai.cache_options` blocks around the call. Needs ``semcache[langchain]``.
"""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Sequence
from typing import Any, Unpack

from semcache._errors import InvalidRequestError, missing_extra
from semcache.openai._options import Options, RequestOptions, check_options, resolve

try:
    from langchain_core._api import LangChainBetaWarning
    from langchain_core.caches import BaseCache
    from langchain_core.load import loads
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        convert_to_openai_messages,
        message_to_dict,
        messages_from_dict,
    )
    from langchain_core.outputs import ChatGeneration, Generation
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("langchain-core", "langchain") from exc

from semcache._shell import AsyncCache, Cache
from semcache.core.plan import Plan
from semcache.core.types import LookupResult

__all__ = ["SemcacheLangChainCache"]

_PARAMS = ("temperature", "n", "top_p", "seed")


class SemcacheLangChainCache(BaseCache):
    """A LangChain ``BaseCache`` on a :class:`semcache.Cache` (or :class:`semcache.AsyncCache`).

    Args:
        cache: the cache; a ``Cache`` serves both LangChain's sync and async paths (the async ones in
            a worker thread), an ``AsyncCache`` only the async ones (``ainvoke``, ``astream``, ...).
        defaults: options of :class:`semcache.openai.Options` for every call (``tenant``, ``ttl``,
            ``threshold``, ``tags``, ...); a ``cache_options()`` block overrides them per call.

    A hit's message carries ``response_metadata["semcache"]`` (layer, similarity, key); LangChain
    itself sets its ``usage_metadata["total_cost"]`` to 0. ``clear()`` flushes the cache's namespace;
    ``clear(tenant="acme")`` drops one tenant's entries.
    """

    def __init__(self, cache: Cache | AsyncCache, **defaults: Unpack[Options]) -> None:
        check_options(defaults)
        self.cache = cache
        self.defaults = dict(defaults)

    def lookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        """The cached generations for a prompt and model configuration, or None."""
        options, plan = self._plan(prompt, llm_string)
        if plan is None or options.bypass:
            return None
        return _generations(self._sync().lookup_plan(plan))

    def update(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        """Store the generations of a call (unless ``no_store`` is in force)."""
        options, plan = self._plan(prompt, llm_string)
        if plan is not None and not options.no_store:
            body = _response(plan, return_val)
            self._sync().store_plan(plan, body, ttl=options.ttl, tags=options.tags)

    def clear(self, **kwargs: Any) -> None:
        """Flush the namespace, or only ``tenant=...``'s entries."""
        cache = self._sync()
        if "tenant" in kwargs:
            cache.invalidate_tenant(kwargs["tenant"])
        else:
            cache.flush()

    async def alookup(self, prompt: str, llm_string: str) -> list[Generation] | None:
        if not isinstance(self.cache, AsyncCache):
            return await asyncio.to_thread(self.lookup, prompt, llm_string)
        options, plan = self._plan(prompt, llm_string)
        if plan is None or options.bypass:
            return None
        return _generations(await self.cache.lookup_plan(plan))

    async def aupdate(self, prompt: str, llm_string: str, return_val: Sequence[Generation]) -> None:
        if not isinstance(self.cache, AsyncCache):
            return await asyncio.to_thread(self.update, prompt, llm_string, return_val)
        options, plan = self._plan(prompt, llm_string)
        if plan is not None and not options.no_store:
            body = _response(plan, return_val)
            await self.cache.store_plan(plan, body, ttl=options.ttl, tags=options.tags)

    async def aclear(self, **kwargs: Any) -> None:
        if not isinstance(self.cache, AsyncCache):
            return await asyncio.to_thread(self.clear, **kwargs)
        if "tenant" in kwargs:
            await self.cache.invalidate_tenant(kwargs["tenant"])
        else:
            await self.cache.flush()

    def _sync(self) -> Cache:
        if isinstance(self.cache, AsyncCache):
            raise TypeError(
                "this SemcacheLangChainCache holds an AsyncCache: use the async LangChain calls "
                "(ainvoke, astream, ...) or give it a semcache.Cache"
            )
        return self.cache

    def _plan(self, prompt: str, llm_string: str) -> tuple[RequestOptions, Plan | None]:
        # Options are read at call time, so a cache_options() block around invoke() applies.
        options = resolve(self.defaults, {}, {})
        try:
            plan = self.cache.plan(
                request(prompt, llm_string), tenant=options.tenant,
                namespace=options.namespace, threshold=options.threshold,
            )  # fmt: skip
        except InvalidRequestError:
            return options, None
        return options, plan


def request(prompt: str, llm_string: str) -> dict[str, Any]:
    """The OpenAI-style request the cache keys a LangChain call by."""
    config, model = _config(llm_string)
    params = {k: config[k] for k in _PARAMS if config.get(k) is not None}
    messages = _messages(prompt)
    if messages is None:
        return {"model": model, "prompt": prompt, "langchain_llm": llm_string, **params}
    return {"model": model, "messages": messages, "langchain_llm": llm_string, **params}


def _config(llm_string: str) -> tuple[dict[str, Any], str]:
    """The model's keyword arguments and name, read from LangChain's configuration string."""
    head = llm_string.split("---", 1)[0]
    try:
        found = json.loads(head)
    except ValueError:
        return {}, "langchain"
    kwargs = found.get("kwargs") if isinstance(found, dict) else None
    if not isinstance(kwargs, dict):
        return {}, "langchain"
    model = kwargs.get("model_name") or kwargs.get("model")
    return kwargs, model if isinstance(model, str) and model else "langchain"


def _messages(prompt: str) -> list[dict[str, Any]] | None:
    """A chat model's prompt (serialised messages) as OpenAI messages; None for a text prompt."""
    if not prompt.startswith("["):
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LangChainBetaWarning)
            found = loads(prompt, allowed_objects="messages")
    except Exception:
        return None
    if not isinstance(found, list) or not all(isinstance(m, BaseMessage) for m in found):
        return None
    return list(convert_to_openai_messages(found))


def _response(plan: Plan, generations: Sequence[Generation]) -> dict[str, Any]:
    """What the cache stores: LangChain's generations, and an OpenAI-style view for accounting."""
    stored = [
        {"text": g.text, "info": g.generation_info,
         "message": message_to_dict(g.message) if isinstance(g, ChatGeneration) else None}
        for g in generations
    ]  # fmt: skip
    choices = [
        {"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": g.text}}
        for i, g in enumerate(generations)
    ]
    body: dict[str, Any] = {"model": plan.canon.model, "choices": choices, "langchain": stored}
    usage = _usage(generations)
    return {**body, "usage": usage} if usage else body


def _usage(generations: Sequence[Generation]) -> dict[str, int] | None:
    messages = [g.message for g in generations if isinstance(g, ChatGeneration)]
    found = [m.usage_metadata for m in messages if isinstance(m, AIMessage) and m.usage_metadata]
    if not found:
        return None
    prompt = found[0]["input_tokens"]
    completion = sum(u["output_tokens"] for u in found)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _generations(result: LookupResult) -> list[Generation] | None:
    stored = (result.response or {}).get("langchain") if result.hit else None
    if not isinstance(stored, list):
        return None
    info = {"layer": result.layer, "similarity": result.similarity, "key": result.key}
    try:
        return [_generation(item, info) for item in stored]
    except (KeyError, TypeError, ValueError):
        return None  # an entry another writer made: a miss, not an error


def _generation(item: dict[str, Any], info: dict[str, Any]) -> Generation:
    if item.get("message") is None:
        return Generation(
            text=item["text"], generation_info={**(item["info"] or {}), "semcache": info}
        )
    (message,) = messages_from_dict([item["message"]])
    message.response_metadata = {**message.response_metadata, "semcache": info}
    return ChatGeneration(message=message, generation_info=item["info"])
