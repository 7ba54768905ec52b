"""semcache in LangChain, against the real langchain-core / langchain-openai and the local server:
the BaseCache for set_llm_cache (exact, semantic, tenant-aware) and the wrapped HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("langchain_openai")

from langchain_core.globals import set_llm_cache
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from openai_server import FakeOpenAI

import semcache
from semcache.integrations.langchain import SemcacheLangChainCache
from semcache.openai import cache_options

CHAT = "chat/completions"


def chat_model(fake: FakeOpenAI, model: str = "gpt-4o-mini", **kw: object) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=fake.base_url, api_key="test", max_retries=0, **kw)  # type: ignore[arg-type]


@pytest.fixture
def lc_cache(wrap_cache: semcache.Cache) -> Iterator[SemcacheLangChainCache]:
    cache = SemcacheLangChainCache(wrap_cache)
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


def test_set_llm_cache_answers_a_repeat_from_the_cache(
    lc_cache: SemcacheLangChainCache, fake_openai: FakeOpenAI
) -> None:
    llm = chat_model(fake_openai)
    first = llm.invoke([SystemMessage("be brief"), HumanMessage("What is Redis?")])
    second = llm.invoke([SystemMessage("be brief"), HumanMessage("What is Redis?")])
    assert fake_openai.calls(CHAT) == 1
    assert second.content == first.content == "echo: What is Redis?"
    assert "semcache" not in first.response_metadata
    assert second.response_metadata["semcache"]["layer"] == "exact"
    assert second.usage_metadata is not None and second.usage_metadata["total_cost"] == 0  # type: ignore[typeddict-item]
    stats = lc_cache.cache.stats(local=True)  # type: ignore[union-attr]
    assert stats.layers["exact"].hits == 1 and stats.layers["exact"].tokens_saved > 0


def test_model_settings_and_system_prompt_are_part_of_the_key(
    lc_cache: SemcacheLangChainCache, fake_openai: FakeOpenAI
) -> None:
    chat_model(fake_openai).invoke("hello")
    chat_model(fake_openai, temperature=0.9).invoke("hello")
    chat_model(fake_openai, model="gpt-4o").invoke("hello")
    chat_model(fake_openai).invoke([SystemMessage("pirate"), HumanMessage("hello")])
    assert fake_openai.calls(CHAT) == 4
    assert chat_model(fake_openai, temperature=0.9).invoke("hello").response_metadata["semcache"]
    assert fake_openai.calls(CHAT) == 4


def test_semantic_hit_on_a_paraphrase(
    fake_openai: FakeOpenAI, redis_url: str, namespace: str
) -> None:
    from tests.conftest import normalising_embedder

    cache = semcache.Cache(
        redis_url=redis_url, embedder=normalising_embedder(), namespace=namespace
    )
    llm = chat_model(fake_openai, cache=SemcacheLangChainCache(cache))
    llm.invoke("What is Redis?")
    hit = llm.invoke("what is redis")
    assert fake_openai.calls(CHAT) == 1
    info = hit.response_metadata["semcache"]
    assert info["layer"] == "semantic" and info["similarity"] >= cache.config.threshold
    assert hit.content == "echo: What is Redis?"
    cache.flush()
    cache.close()


def test_tenants_never_share_and_options_apply_per_call(
    wrap_cache: semcache.Cache, fake_openai: FakeOpenAI
) -> None:
    acme = chat_model(fake_openai, cache=SemcacheLangChainCache(wrap_cache, tenant="acme"))
    globex = chat_model(fake_openai, cache=SemcacheLangChainCache(wrap_cache, tenant="globex"))
    acme.invoke("secret plan")
    globex.invoke("secret plan")
    assert fake_openai.calls(CHAT) == 2
    with cache_options(tenant="globex"):
        assert acme.invoke("secret plan").response_metadata["semcache"]["layer"] == "exact"
    with cache_options(bypass=True):
        assert "semcache" not in acme.invoke("secret plan").response_metadata
    with cache_options(no_store=True):
        acme.invoke("not kept")
    acme.invoke("not kept")
    assert fake_openai.calls(CHAT) == 5


async def test_async_calls_hit_too(
    lc_cache: SemcacheLangChainCache, fake_openai: FakeOpenAI
) -> None:
    llm = chat_model(fake_openai)
    await llm.ainvoke("async hello")
    hit = await llm.ainvoke("async hello")
    assert fake_openai.calls(CHAT) == 1 and hit.response_metadata["semcache"]["layer"] == "exact"


async def test_an_async_cache_serves_the_async_path(
    fake_openai: FakeOpenAI, redis_url: str, namespace: str
) -> None:
    from conftest import hash_embedder

    async with semcache.AsyncCache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=namespace
    ) as cache:
        llm = chat_model(fake_openai, cache=SemcacheLangChainCache(cache))
        await llm.ainvoke("native async")
        hit = await llm.ainvoke("native async")
        with pytest.raises(TypeError, match="AsyncCache"):
            llm.invoke("native async")
        await cache.flush()
    assert fake_openai.calls(CHAT) == 1 and hit.response_metadata["semcache"]["layer"] == "exact"


def test_clear_drops_the_entries(lc_cache: SemcacheLangChainCache, fake_openai: FakeOpenAI) -> None:
    llm = chat_model(fake_openai)
    llm.invoke("forget me")
    lc_cache.clear()
    llm.invoke("forget me")
    assert fake_openai.calls(CHAT) == 2


def test_chat_openai_on_the_wrapped_http_client(
    wrap_cache: semcache.Cache, fake_openai: FakeOpenAI
) -> None:
    http = semcache.openai.http_client(wrap_cache, tenant="acme")
    llm = chat_model(fake_openai, http_client=http, include_response_headers=True)
    first = llm.invoke("through http")
    second = llm.invoke("through http")
    streamed = "".join(str(c.content) for c in llm.stream("through http"))
    assert fake_openai.calls(CHAT) == 1
    assert first.response_metadata["headers"]["x-semcache-layer"] == "none"
    assert second.response_metadata["headers"]["x-semcache-layer"] == "exact"
    assert second.content == first.content == streamed == "echo: through http"
    http.close()
