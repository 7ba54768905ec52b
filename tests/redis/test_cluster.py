"""semcache on a Redis Cluster: 3 masters started by the project's launcher, search on every node.

What only a cluster shows: exact entries spread over the nodes, each semantic index sits on the
node of its hash tag with all its documents, a sharded namespace searches every shard and merges,
and invalidation, flush and stats reach every node.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

import semcache
from semcache import AsyncCache, Cache, CacheConfig
from semcache.core.plan import Planner
from semcache.redis.keys import Keys
from tests.conftest import answer, chat, hash_embedder


@pytest.fixture
def nodes(redis_cluster: Any) -> Iterator[list[redis.Redis]]:
    """A plain client per node, to look at what each node holds."""
    clients = [redis.Redis(host="127.0.0.1", port=port, password=redis_cluster.password)
               for port in redis_cluster.ports]  # fmt: skip
    yield clients
    for client in clients:
        client.close()


def owner(nodes: list[redis.Redis], key: str) -> redis.Redis:
    """The node that owns a key's slot."""
    slot = key_slot(key.encode())
    by_port = {c.connection_pool.connection_kwargs["port"]: c for c in nodes}
    for low, high, primary, *_ in nodes[0].execute_command("CLUSTER", "SLOTS"):
        if low <= slot <= high:
            return by_port[int(primary[1])]
    raise AssertionError(f"no node owns {key}")


def count(nodes: list[redis.Redis], pattern: str) -> list[int]:
    return [sum(1 for _ in client.scan_iter(match=pattern, count=1000)) for client in nodes]


def indexes(client: redis.Redis) -> set[str]:
    return {name.decode() for name in client.execute_command("FT._LIST")}


def table(vectors: dict[str, np.ndarray]) -> semcache.CallableEmbedder:
    """An embedder whose vectors the test chooses (unknown texts get a far-away vector)."""
    far = np.eye(8, dtype=np.float32)[7]
    return semcache.CallableEmbedder(
        lambda texts: np.vstack([vectors.get(t, far) for t in texts]), model_id="table", dimension=8
    )


def test_launcher_starts_three_masters_with_search_on_every_node(
    nodes: list[redis.Redis],
) -> None:
    for client in nodes:
        info = client.info("cluster")
        assert info["cluster_enabled"] == 1
        state = client.execute_command("CLUSTER", "INFO")
        assert b"cluster_state:ok" in state and b"cluster_known_nodes:3" in state
        assert isinstance(client.execute_command("FT._LIST"), list)  # the module answers
    assert len({owner(nodes, f"k{i}").connection_pool.connection_kwargs["port"]
                for i in range(50)}) == 3  # fmt: skip


def test_cache_on_a_cluster_url_uses_a_cluster_client(cluster_url: str, namespace: str) -> None:
    with Cache(redis_url=cluster_url, embedder=hash_embedder(), namespace=namespace) as cache:
        assert isinstance(cache.client, RedisCluster)
        cache.store(chat("hello"), answer("hi"))
        assert cache.lookup(chat("hello")).layer == "exact"
        cache.flush()


def test_exact_entries_spread_and_the_index_lives_with_its_documents(
    cluster_url: str, nodes: list[redis.Redis], namespace: str
) -> None:
    with Cache(redis_url=cluster_url, embedder=hash_embedder(), namespace=namespace) as cache:
        for i in range(30):
            assert cache.store(chat(f"question {i}"), answer(str(i)))
        keys = Keys(namespace)
        exact = count(nodes, f"semcache:x:{namespace}:*")
        docs = count(nodes, f"{keys.doc_prefix}*")
        home = owner(nodes, keys.doc_prefix)
        assert sum(exact) == 30 and sum(1 for n in exact if n) >= 2  # sharded by key
        assert sum(docs) == 30 and docs[nodes.index(home)] == 30  # one node, the tag's owner
        assert [keys.index in indexes(c) for c in nodes] == [c is home for c in nodes]
        assert [cache.lookup(chat(f"question {i}")).layer for i in range(30)] == ["exact"] * 30
        cache.flush()


def test_semantic_hit_with_the_real_model_on_a_cluster(
    cluster_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    with Cache(redis_url=cluster_url, embedder=embedder, namespace=namespace) as cache:
        cache.store(chat("How do I reset my password?"), answer("Use the reset link."))
        result = cache.lookup(chat("how can I reset my password"))
        assert result.layer == "semantic" and result.response == answer("Use the reset link.")
        cache.flush()


def spread_namespace(
    base: str, shards: int, nodes: list[redis.Redis], fits: Callable[[str], bool] = lambda ns: True
) -> str:
    """A namespace whose shards live on at least two nodes and that ``fits`` (found
    deterministically from ``base``)."""
    for j in range(100):
        keys = Keys(f"{base}-{j}", shards)
        homes = {id(owner(nodes, keys.prefix_of(i))) for i in range(shards)}
        if len(homes) >= 2 and fits(keys.namespace):
            return keys.namespace
    raise AssertionError("no namespace spreads its shards")


def test_a_sharded_namespace_searches_every_shard_and_merges_the_nearest(
    cluster_url: str, nodes: list[redis.Redis], namespace: str
) -> None:
    def fills_every_shard(ns: str) -> bool:  # entry digests depend on the namespace
        planner = Planner(CacheConfig(namespace=ns, shards=3), "table")
        return len({planner.keys().shard_of(planner.plan(chat(f"entry {i}")).digest)
                    for i in range(12)}) == 3  # fmt: skip

    ns = spread_namespace(namespace, 3, nodes, fills_every_shard)
    query = np.eye(8, dtype=np.float32)[0]
    # Entry i is at angle ~ i * 6 degrees from the query: entry 0 is the nearest.
    angles = np.radians(np.arange(12) * 6.0)
    vectors = {f"entry {i}": np.cos(a) * query + np.sin(a) * np.eye(8, dtype=np.float32)[1]
               for i, a in enumerate(angles)}  # fmt: skip
    vectors["the query"] = query
    config = CacheConfig(namespace=ns, shards=3, threshold=0.5, top_k=4,
                         decision=semcache.ThresholdDecision())  # the merge, not the guard  # fmt: skip
    with Cache(redis_url=cluster_url, embedder=table(vectors), config=config) as cache:
        for i in range(12):
            cache.store(chat(f"entry {i}"), answer(str(i)))
        keys = cache._core.planner.keys()
        plans = [cache.plan(chat(f"entry {i}")) for i in range(12)]
        assert len({keys.shard_of(p.digest) for p in plans}) == 3  # entries in every shard
        for shard, index in enumerate(keys.indexes):
            home = owner(nodes, keys.prefix_of(shard))
            assert index in indexes(home)
        result = cache.lookup(chat("the query"))
        assert result.layer == "semantic" and result.response == answer("0")
        assert result.matched_key == plans[0].digest
        assert result.similarity == pytest.approx(1.0, abs=1e-5)
        # Remove the nearest: the next nearest comes from whichever shard holds it.
        cache.invalidate(keys=[plans[0].digest])
        again = cache.lookup(chat("the query"))
        assert again.response == answer("1")
        assert again.similarity == pytest.approx(np.cos(angles[1]), abs=1e-4)
        cache.flush()
        assert not any(index in indexes(c) for c in nodes for index in keys.indexes)


def test_invalidation_and_flush_reach_every_node(
    cluster_url: str, nodes: list[redis.Redis], namespace: str
) -> None:
    config = CacheConfig(namespace=namespace, shards=2)
    with Cache(redis_url=cluster_url, embedder=hash_embedder(), config=config) as cache:
        for tenant in ("acme", "globex"):
            for i in range(10):
                cache.store(chat(f"q{i}"), answer("x"), tenant=tenant, tags=(f"doc:{i % 2}",))
        before = sum(count(nodes, f"semcache:*{namespace}*"))
        assert before == 2 * (10 + 10 + 2)  # exact + doc per entry, a tag set per tag per tenant
        assert cache.invalidate(tags=("doc:0",), all_tenants=True) == 2 * (5 + 5 + 1)
        assert [cache.lookup(chat(f"q{i}"), tenant="acme").hit for i in range(4)] == [
            False, True, False, True]  # fmt: skip
        assert cache.invalidate_tenant("acme") == 5 + 5 + 1
        assert cache.lookup(chat("q1"), tenant="globex").layer == "exact"
        cache.flush()
        left = sum(count(nodes, f"semcache:*{namespace}*"))
        generations = sum(count(nodes, f"semcache:g:{namespace}*"))  # expire in an hour
        assert left - generations == 0 and generations == 2  # the namespace and acme


def test_stats_of_several_processes_add_up_on_a_cluster(cluster_url: str, namespace: str) -> None:
    config = CacheConfig(namespace=namespace, semantic=False)
    with Cache(redis_url=cluster_url, config=config) as first:
        first.store(chat("hi"), answer("hello"))
        with Cache(redis_url=cluster_url, config=config) as second:
            for cache in (first, second, second):
                assert cache.lookup(chat("hi")).layer == "exact"
            second.lookup(chat("bye"))
        stats = first.stats()
        assert stats.source == "redis"
        assert (stats.layers["exact"].lookups, stats.layers["exact"].hits) == (4, 3)
        first.flush()


def test_an_injected_cluster_client_works(cluster_url: str, namespace: str) -> None:
    client = RedisCluster.from_url(cluster_url)
    with Cache(redis_client=client, embedder=hash_embedder(), namespace=namespace) as cache:
        cache.store(chat("x"), answer("y"))
        assert cache.lookup(chat("x")).layer == "exact"
        cache.flush()
    assert client.ping()  # not closed by the cache
    client.close()


async def test_async_cache_on_a_cluster_with_shards(cluster_url: str, namespace: str) -> None:
    config = CacheConfig(namespace=namespace, shards=2, threshold=0.5)
    vectors = {"a question": np.eye(8, dtype=np.float32)[0],
               "a paraphrase": (np.eye(8)[0] + 0.2 * np.eye(8)[1]).astype(np.float32)}  # fmt: skip
    async with AsyncCache(redis_url=cluster_url, embedder=table(vectors), config=config) as cache:
        assert await cache.store(chat("a question"), answer("yes"), tags=("t",))
        assert (await cache.lookup(chat("a question"))).layer == "exact"
        result = await cache.lookup(chat("a paraphrase"))
        assert result.layer == "semantic" and result.response == answer("yes")
        assert await cache.invalidate(tags=("t",)) == 3
        assert (await cache.lookup(chat("a question"))).layer is None
        await cache.flush()


def client_addrs(nodes: list[redis.Redis]) -> set[tuple[int, str]]:
    """Every client connection the nodes hold, as (node, client address), not the ones looking."""
    return {
        (i, c["addr"])
        for i, node in enumerate(nodes)
        for c in node.client_list()
        if c.get("cmd") != "client|list"
    }


def lingering(nodes: list[redis.Redis], ours: set[tuple[int, str]]) -> set[tuple[int, str]]:
    """Which of ``ours`` the nodes still hold once they have processed the closes (a closed socket
    is seen a moment later). Other tests' connections closing meanwhile do not count: an earlier
    version compared totals, and a lingering socket of another test closing made it fail."""
    for _ in range(50):
        if not (left := ours & client_addrs(nodes)):
            return left
        time.sleep(0.02)
    return left


def test_closing_a_cluster_cache_closes_every_node_connection(
    cluster_url: str, namespace: str, nodes: list[redis.Redis]
) -> None:
    # redis-py's RedisCluster.close() leaves the node pools open: their sockets used to linger
    # until garbage collection, and a ResourceWarning then failed whichever test was running.
    before = client_addrs(nodes)
    with Cache(redis_url=cluster_url, embedder=hash_embedder(8), namespace=namespace) as cache:
        cache.store(chat("q"), answer("a"))
        assert cache.lookup(chat("q")).layer == "exact"
        cache.flush()
        ours = client_addrs(nodes) - before
        assert len({node for node, _ in ours}) == len(nodes)  # it spoke to every node
    assert lingering(nodes, ours) == set()


async def test_closing_an_async_cluster_cache_closes_every_node_connection(
    cluster_url: str, namespace: str, nodes: list[redis.Redis]
) -> None:
    before = client_addrs(nodes)
    async with AsyncCache(redis_url=cluster_url, embedder=hash_embedder(8),
                          namespace=namespace) as cache:  # fmt: skip
        await cache.store(chat("q"), answer("a"))
        assert (await cache.lookup(chat("q"))).layer == "exact"
        await cache.flush()
        ours = client_addrs(nodes) - before
        assert len({node for node, _ in ours}) == len(nodes)
    assert lingering(nodes, ours) == set()


async def test_an_async_cluster_cache_that_failed_to_connect_leaves_no_socket_behind(
    cluster_url: str, namespace: str
) -> None:
    # After a failed startup check redis-py's aclose() closed nothing: the sockets lingered until
    # garbage collection, whose ResourceWarning then failed whichever test happened to run (the
    # unraisable-exception check of pytest fails this one if a socket is still open here).
    async with AsyncCache(redis_url=cluster_url, embedder=hash_embedder(16), namespace=namespace):
        pass
    cache = AsyncCache(redis_url=cluster_url, embedder=hash_embedder(32), namespace=namespace)
    with pytest.raises(semcache.DimensionMismatchError) as failed:
        await cache.connect()
    await cache.aclose()
    del cache, failed
    gc.collect()
    async with AsyncCache(redis_url=cluster_url, embedder=hash_embedder(16),
                          namespace=namespace) as cleaner:  # fmt: skip
        await cleaner.flush()
