"""AsyncCache runs the same flows as Cache: the same answers, awaited."""

from __future__ import annotations

import asyncio

import pytest

import semcache
from semcache import AsyncCache, Cache
from tests.conftest import answer, chat, hash_embedder


async def test_async_exact_semantic_and_tenant_isolation(
    redis_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    async with AsyncCache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        assert (await cache.lookup(chat("How do I reset my password?"))).layer is None
        assert await cache.store(chat("How do I reset my password?"), answer("link"), tags=("t",))
        exact = await cache.lookup(chat("How do I reset my password?"))
        assert exact.layer == "exact" and exact.response == answer("link")
        semantic = await cache.lookup(chat("how can I reset my password"))
        assert semantic.layer == "semantic" and semantic.similarity is not None
        assert (await cache.lookup(chat("how can I reset my password"), tenant="x")).layer is None
        assert await cache.invalidate(tags=("t",)) == 3
        assert (await cache.lookup(chat("How do I reset my password?"))).layer is None
        await cache.flush()


async def test_sync_and_async_caches_read_each_others_entries(
    redis_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as sync_cache:
        sync_cache.store(chat("Which planet is largest?"), answer("Jupiter"))
        async with AsyncCache(redis_url=redis_url, embedder=embedder, namespace=namespace) as ac:
            result = await ac.lookup(chat("What is the largest planet?"))
            assert result.layer == "semantic" and result.response == answer("Jupiter")
            await ac.store(chat("Which planet is smallest?"), answer("Mercury"))
        assert sync_cache.lookup(chat("Which planet is smallest?")).layer == "exact"
        sync_cache.flush()


async def test_async_dimension_mismatch_raises_on_connect(redis_url: str, namespace: str) -> None:
    async with AsyncCache(redis_url=redis_url, embedder=hash_embedder(16), namespace=namespace):
        pass
    cache = AsyncCache(redis_url=redis_url, embedder=hash_embedder(32), namespace=namespace)
    with pytest.raises(semcache.DimensionMismatchError):
        await cache.connect()
    await cache.aclose()
    async with AsyncCache(
        redis_url=redis_url, embedder=hash_embedder(16), namespace=namespace
    ) as c:
        await c.flush()


async def test_concurrent_async_lookups_are_answered_independently(
    redis_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    async with AsyncCache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        questions = [f"What is {i} plus {i}?" for i in range(8)]
        for i, q in enumerate(questions):
            await cache.store(chat(q), answer(str(2 * i)))
        results = await asyncio.gather(*(cache.lookup(chat(q)) for q in questions))
        assert [r.response for r in results] == [answer(str(2 * i)) for i in range(8)]
        await cache.flush()
