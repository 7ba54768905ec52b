"""semcache as LiteLLM's cache, against the real litellm and the local server: hits report
``cache_hit=True`` and cost 0, LiteLLM's ``cache={...}`` controls are honoured and never sent upstream."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map
pytest.importorskip("litellm")

import litellm
from openai_server import FakeOpenAI

import semcache
from semcache.integrations.litellm import SemcacheLiteLLMCache
from semcache.openai import cache_options

CHAT = "chat/completions"
# litellm's own TypedDicts make pydantic warn when litellm builds its types (third-party).
pytestmark = pytest.mark.filterwarnings("ignore:Items? .* the `ReadOnly` qualifier:UserWarning")


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.fixture
def use_cache() -> Iterator[Any]:
    def install(cache: semcache.Cache | semcache.AsyncCache, **defaults: Any) -> None:
        litellm.cache = SemcacheLiteLLMCache(cache, **defaults)

    yield install
    litellm.cache = None


def complete(fake: FakeOpenAI, text: str, **kw: Any) -> Any:
    return litellm.completion(
        model="openai/gpt-4o-mini", api_base=fake.base_url, api_key="test", messages=ask(text), **kw
    )


def test_a_hit_reports_cache_hit_and_costs_nothing(
    use_cache: Any, wrap_cache: semcache.Cache, fake_openai: FakeOpenAI
) -> None:
    use_cache(wrap_cache)
    miss = complete(fake_openai, "hello litellm")
    hit = complete(fake_openai, "hello litellm")
    assert fake_openai.calls(CHAT) == 1
    assert (
        hit.choices[0].message.content == miss.choices[0].message.content == "echo: hello litellm"
    )
    assert not miss._hidden_params.get("cache_hit") and miss._hidden_params["response_cost"] > 0
    assert hit._hidden_params["cache_hit"] is True and hit._hidden_params["response_cost"] == 0
    assert wrap_cache.stats(local=True).layers["exact"].hits == 1


def test_no_cache_and_no_store_are_honoured_and_not_sent_upstream(
    use_cache: Any, wrap_cache: semcache.Cache, fake_openai: FakeOpenAI
) -> None:
    use_cache(wrap_cache)
    complete(fake_openai, "news")
    fresh = complete(fake_openai, "news", cache={"no-cache": True})
    assert fake_openai.calls(CHAT) == 2 and not fresh._hidden_params.get("cache_hit")
    assert "cache" not in fake_openai.last(CHAT).body
    assert complete(fake_openai, "news")._hidden_params["cache_hit"] is True
    complete(fake_openai, "secret", cache={"no-store": True})
    complete(fake_openai, "secret")
    assert fake_openai.calls(CHAT) == 4


def test_a_paraphrase_is_a_semantic_hit_within_one_model(
    use_cache: Any, fake_openai: FakeOpenAI, redis_url: str, namespace: str
) -> None:
    from tests.conftest import normalising_embedder

    with semcache.Cache(
        redis_url=redis_url, embedder=normalising_embedder(), namespace=namespace
    ) as cache:
        use_cache(cache)
        complete(fake_openai, "What is Redis?")
        metadata: dict[str, Any] = {}
        hit = complete(fake_openai, "what is redis", metadata=metadata)
        other = litellm.completion(
            model="openai/gpt-4o",
            api_base=fake_openai.base_url,
            api_key="t",
            messages=ask("what is redis"),
        )
        cache.flush()
    assert hit._hidden_params["cache_hit"] is True
    assert hit.choices[0].message.content == "echo: What is Redis?"
    assert metadata["semantic-similarity"] >= cache.config.threshold
    assert not other._hidden_params.get("cache_hit") and fake_openai.calls(CHAT) == 2


def test_streams_are_cached_and_replayed(
    use_cache: Any, wrap_cache: semcache.Cache, fake_openai: FakeOpenAI
) -> None:
    use_cache(wrap_cache)
    texts = []
    for _ in range(2):
        chunks = list(complete(fake_openai, "stream it", stream=True))
        texts.append("".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
    assert texts == ["echo: stream it", "echo: stream it"]
    assert fake_openai.calls(CHAT) == 1


def test_acompletion_hits_and_tenants_never_share(
    use_cache: Any, wrap_cache: semcache.Cache, fake_openai: FakeOpenAI
) -> None:
    use_cache(wrap_cache, tenant="acme")
    # A loop of its own in a thread of its own: LiteLLM leaves an event loop behind in the thread
    # that runs acompletion after completion (an unclosed-loop ResourceWarning at exit).
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(_acompletions(wrap_cache, fake_openai))
        except BaseException as exc:
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failures:
        raise failures[0]


async def _acompletions(wrap_cache: semcache.Cache, fake_openai: FakeOpenAI) -> None:

    async def acomplete(text: str) -> Any:
        return await litellm.acompletion(
            model="openai/gpt-4o-mini",
            api_base=fake_openai.base_url,
            api_key="t",
            messages=ask(text),
        )

    await acomplete("async q")
    await stored(wrap_cache, "async q", tenant="acme")  # LiteLLM writes in a background task
    assert (await acomplete("async q"))._hidden_params["cache_hit"] is True
    with cache_options(tenant="globex"):
        assert not (await acomplete("async q"))._hidden_params.get("cache_hit")
    assert fake_openai.calls(CHAT) == 2


async def stored(cache: semcache.Cache, text: str, *, tenant: str) -> None:
    request = {"model": "openai/gpt-4o-mini", "messages": ask(text)}
    for _ in range(500):
        if cache.lookup(request, tenant=tenant).hit:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("LiteLLM never stored the answer")
