"""The hybrid plan of scoped KNN searches (semcache/core/hybrid.py), against a real Redis.

RediSearch scans every document of a scope that is most of a mid-sized index; the cache counts the
scope and the index now and then, with a search, and asks for the graph walk (``BATCHES``) when the
scope is big and a real share of the index. A small tenant of the same index keeps RediSearch's
choice (a scan of its few documents), and counts that fail change nothing but the plan.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

import semcache
from semcache import AsyncCache, Cache
from semcache.core import hybrid
from semcache.core.hybrid import HybridPlans
from semcache.core.types import IndexParams
from semcache.redis.keys import Keys
from tests.conftest import answer, chat

DIM = 16
BIG = hybrid.MIN_IN_SCOPE + 100


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def vectors() -> np.ndarray:
    return unit(np.random.default_rng(7).standard_normal((BIG, DIM)))


def no_embedder() -> semcache.CallableEmbedder:
    def refuse(texts: list[str]) -> np.ndarray:
        raise AssertionError("every vector is given in these tests")

    return semcache.CallableEmbedder(refuse, model_id="hybrid-given", dimension=DIM)


class Sent:
    """The commands a cache's executor sends, batch by batch."""

    def __init__(self, executor: Any) -> None:
        self.batches: list[tuple[tuple[Any, ...], ...]] = []
        original = executor.commands
        if "asyncio" in type(executor.client).__module__:

            async def record_async(batch: tuple[tuple[Any, ...], ...]) -> Any:
                self.batches.append(batch)
                return await original(batch)

            executor.commands = record_async
        else:

            def record(batch: tuple[tuple[Any, ...], ...]) -> Any:
                self.batches.append(batch)
                return original(batch)

            executor.commands = record

    def knn(self) -> list[str]:
        """The query strings of the KNN searches sent."""
        return [
            str(c[2]) for b in self.batches for c in b if c[0] == "FT.SEARCH" and "KNN" in str(c[2])
        ]

    def searches(self) -> list[str]:
        """The query strings of the vector searches sent (KNN or range)."""
        return [
            str(c[2])
            for b in self.batches
            for c in b
            if c[0] == "FT.SEARCH" and "$vec" in str(c[2])
        ]

    def counts(self) -> list[str]:
        """The query strings of the plan's counts (searches without a vector)."""
        return [
            str(c[2])
            for b in self.batches
            for c in b
            if c[0] == "FT.SEARCH" and "$vec" not in str(c[2])
        ]


def load(cache: Cache, vectors: np.ndarray, n: int, tenant: str | None = None) -> None:
    pairs = [(chat(f"stored question {i}"), answer(f"answer {i}")) for i in range(n)]
    assert cache.store_many(pairs, tenant=tenant, vectors=vectors[:n]) == n


#: The searches are under test, not the decision: a plain cut-off serves what is near. The plan is
#: a KNN's (a range search, the default, has none to choose).
CONFIG = semcache.CacheConfig(decision=semcache.ThresholdDecision(), search="knn")


def near(vector: np.ndarray) -> np.ndarray:
    return unit(vector[None, :] + np.random.default_rng(1).normal(0, 0.02, (1, DIM)))[0]


@pytest.fixture
def big(redis_url: str, namespace: str, vectors: np.ndarray) -> Iterator[Cache]:
    """An HNSW namespace whose one scope holds BIG entries."""
    with Cache(redis_url=redis_url, embedder=no_embedder(), namespace=namespace,
               config=CONFIG) as cache:  # fmt: skip
        load(cache, vectors, BIG)
        yield cache
        cache.flush()


def test_a_scope_that_is_most_of_a_big_enough_index_walks_the_graph(
    big: Cache, vectors: np.ndarray
) -> None:
    sent = Sent(big._executor)
    first = big.lookup(chat("asked 5"), vector=near(vectors[5]))
    assert first.layer == "semantic" and first.response == answer("answer 5")
    # the first search counted the scope and the index, in its own round trip, and chose nothing
    assert len(sent.counts()) == 2 and len(sent.batches) == 1
    assert "HYBRID_POLICY" not in sent.knn()[0]
    sent.batches.clear()
    for i in (7, 8, 9):
        result = big.lookup(chat(f"asked {i}"), vector=near(vectors[i]))
        assert result.layer == "semantic" and result.response == answer(f"answer {i}")
    assert sent.counts() == []  # counted once a minute, not per search
    assert len(sent.knn()) == 3 and all("HYBRID_POLICY BATCHES" in q for q in sent.knn())
    miss = big.lookup(chat("asked far"), vector=-vectors[3])
    assert miss.layer is None and miss.reason not in ("search-failed", "search-denied")


def test_a_small_tenant_of_the_same_index_leaves_the_plan_to_redisearch(
    big: Cache, vectors: np.ndarray
) -> None:
    load(big, vectors, 20, tenant="small")
    sent = Sent(big._executor)
    for _ in range(2):
        result = big.lookup(chat("asked 3"), tenant="small", vector=near(vectors[3]))
        assert result.layer == "semantic" and result.response == answer("answer 3")
    assert len(sent.counts()) == 2  # counted, once
    assert len(sent.knn()) == 2 and not any("HYBRID_POLICY" in q for q in sent.knn())
    result = big.lookup(chat("asked 4"), vector=near(vectors[4]))  # the big scope walks
    assert result.response == answer("answer 4")
    assert big.lookup(chat("asked 4b"), vector=near(vectors[4])).response == answer("answer 4")
    assert "HYBRID_POLICY BATCHES" in sent.knn()[-1]


def test_counts_that_fail_change_only_the_plan(
    big: Cache, vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A count Redis refuses (here: a query on a field the index lacks) is no failed search: the
    lookup is served, the breaker stays closed, RediSearch keeps choosing."""
    monkeypatch.setattr(hybrid.commands, "count", lambda index, query: (
        "FT.SEARCH", index, "@nofield:{x}", "LIMIT", 0, 0, "DIALECT", 2))  # fmt: skip
    sent = Sent(big._executor)
    for i in (1, 2):
        result = big.lookup(chat(f"asked {i}"), vector=near(vectors[i]))
        assert result.layer == "semantic" and result.response == answer(f"answer {i}")
    assert len(sent.counts()) == 2 and not any("HYBRID_POLICY" in q for q in sent.knn())
    assert big.available


def test_a_server_that_refuses_the_plan_gets_searches_without_it(
    big: Cache, vectors: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server without HYBRID_POLICY (RediSearch before 2.6; here: a plan it does not know)
    refuses the search once: that lookup is a miss, no exception, the breaker closed; from then
    on the searches name no plan and are served."""
    monkeypatch.setattr(hybrid, "BATCHES", "NOSUCHPLAN")
    assert big.lookup(chat("asked 5"), vector=near(vectors[5])).layer == "semantic"  # counts
    refused = big.lookup(chat("asked 6"), vector=near(vectors[6]))
    assert refused.layer is None and refused.reason == "search-failed" and big.available
    assert big._core.semantic.plans is None
    sent = Sent(big._executor)
    result = big.lookup(chat("asked 7"), vector=near(vectors[7]))
    assert result.layer == "semantic" and result.response == answer("answer 7")
    assert sent.counts() == [] and not any("HYBRID_POLICY" in q for q in sent.knn())


def test_many_tenants_of_one_index_count_its_total_once(big: Cache, vectors: np.ndarray) -> None:
    """Each tenant counts its own scope; the index's total (a count of every document) is counted
    once for all of them: a thousand tenants do not each scan the index."""
    sent = Sent(big._executor)
    for t in range(5):
        load(big, vectors, 3, tenant=f"tenant-{t}")
        result = big.lookup(chat("asked 1"), tenant=f"tenant-{t}", vector=near(vectors[1]))
        assert result.response == answer("answer 1")
    counts = sent.counts()
    assert counts.count("*") == 1 and len(counts) == 6
    assert len({q for q in counts if q != "*"}) == 5  # one scope count per tenant


def test_threads_searching_a_new_scope_at_once_count_it_once(
    big: Cache, vectors: np.ndarray
) -> None:
    """Eight threads' first searches of the scope, at the same moment: one carries the counts, the
    others search without them, and all are served."""
    sent = Sent(big._executor)
    start = threading.Barrier(8)

    def lookup(i: int) -> Any:
        start.wait()
        return big.lookup(chat(f"asked {i}"), vector=near(vectors[i]))

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lookup, range(8)))
    assert [r.response for r in results] == [answer(f"answer {i}") for i in range(8)]
    assert len(sent.counts()) == 2 and len(sent.knn()) == 8


def test_a_flat_index_never_counts_nor_names_a_plan(
    redis_url: str, namespace: str, vectors: np.ndarray
) -> None:
    config = replace(CONFIG, index=IndexParams(algorithm="flat"))
    with Cache(
        redis_url=redis_url, embedder=no_embedder(), namespace=namespace, config=config
    ) as c:
        load(c, vectors, BIG)
        sent = Sent(c._executor)
        for i in (1, 2):
            assert c.lookup(chat(f"asked {i}"), vector=near(vectors[i])).response == answer(
                f"answer {i}"
            )
        assert sent.counts() == [] and not any("HYBRID_POLICY" in q for q in sent.knn())
        c.flush()


async def test_the_async_cache_counts_and_walks_too(
    redis_url: str, namespace: str, vectors: np.ndarray
) -> None:
    async with AsyncCache(
        redis_url=redis_url, embedder=no_embedder(), namespace=namespace, config=CONFIG
    ) as c:
        pairs = [(chat(f"stored question {i}"), answer(f"answer {i}")) for i in range(BIG)]
        assert await c.store_many(pairs, vectors=vectors) == BIG
        sent = Sent(c._executor)
        for i in (5, 6):
            result = await c.lookup(chat(f"asked {i}"), vector=near(vectors[i]))
            assert result.response == answer(f"answer {i}")
        assert len(sent.counts()) == 2 and "HYBRID_POLICY BATCHES" in sent.knn()[-1]
        await c.flush()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_rule_and_when_it_counts_again() -> None:
    clock = Clock()
    plans = HybridPlans(refresh_s=60, clock=clock)
    n = hybrid.MIN_IN_SCOPE
    keys = Keys("ns")
    i = keys.index_of(0)
    assert plans.plan(i, "s") is None
    assert len(plans.counts(keys, "s")) == 2  # the scope and the index
    assert plans.counts(keys, "s") == ()  # one count on its way at a time
    plans.learn(keys, "s", [[n], [n * 10]])  # RESP2
    assert plans.plan(i, "s") == "BATCHES"
    assert len(plans.counts(keys, "other")) == 1  # another scope: its own count; the total known
    plans.learn(keys, "other", [[5]])
    assert plans.plan(i, "other") is None  # too few to walk
    clock.now += 59
    assert plans.counts(keys, "s") == ()
    clock.now += 2
    assert len(plans.counts(keys, "s")) == 2
    plans.learn(keys, "s", [{b"total_results": n}, {"total_results": 10**6}])  # RESP3
    assert plans.plan(i, "s") is None  # 0.2% of the index: the scan is cheaper
    clock.now += 61
    assert len(plans.counts(keys, "s")) == 1  # a million documents: counted ten times less often
    plans.learn(keys, "s", [[n * 100]])
    assert plans.plan(i, "s") == "BATCHES"
    clock.now += 100  # 200,000 in scope: its own count stands twice as long
    assert plans.counts(keys, "s") == ()
    clock.now += 3000
    assert len(plans.counts(keys, "s")) == 2  # counts sent, never read (an exact hit answered) ...
    clock.now += hybrid.PENDING_S + 0.1
    assert len(plans.counts(keys, "s")) == 2  # ... are sent again within seconds
    plans.learn(keys, "s", [RuntimeError("refused"), [5]])
    assert plans.plan(i, "s") is None
    plans.learn(keys, "s", [[n]])  # replies nobody asked for are not read
    assert plans.plan(i, "s") is None


def test_each_shard_of_a_sharded_namespace_gets_its_own_plan(
    redis_url: str, namespace: str, vectors: np.ndarray
) -> None:
    """Shard 0 holds BIG entries of the scope, shard 1 a hundred: shard 0's search walks the
    graph, shard 1's keeps RediSearch's choice; each shard's counts are read as its own."""
    config = replace(CONFIG, shards=2)
    with Cache(
        redis_url=redis_url, embedder=no_embedder(), namespace=namespace, config=config
    ) as c:
        chosen: dict[int, list[str]] = {0: [], 1: []}
        i = 0
        while len(chosen[0]) < BIG or len(chosen[1]) < 100:
            text = f"sharded question {i}"
            plan = c.plan(chat(text))
            shard = plan.keys.shard_of(plan.digest)
            if len(chosen[shard]) < (BIG if shard == 0 else 100):
                chosen[shard].append(text)
            i += 1
        texts = chosen[0] + chosen[1]
        rows = unit(np.random.default_rng(3).standard_normal((len(texts), DIM)))
        pairs = [(chat(t), answer(f"answer {t}")) for t in texts]
        assert c.store_many(pairs, vectors=rows) == len(texts)
        sent = Sent(c._executor)
        for j in (0, 1, BIG, BIG + 1):  # two entries of each shard
            result = c.lookup(chat(f"asked {j}"), vector=near(rows[j]))
            assert result.response == answer(f"answer {texts[j]}")
        assert len(sent.counts()) == 4  # both shards counted, with the first search
        plan = c.plan(chat("probe"))
        plans = c._core.semantic.plans
        assert plans is not None
        assert plans.plan(plan.keys.index_of(0), plan.scope) == "BATCHES"
        assert plans.plan(plan.keys.index_of(1), plan.scope) is None
        last = sent.knn()[-2:]  # the last lookup's two searches, shard 0 then shard 1
        assert "HYBRID_POLICY BATCHES" in last[0] and "HYBRID_POLICY" not in last[1]
        c.flush()
