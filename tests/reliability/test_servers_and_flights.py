"""Defects 7-10 of issue 14 (found when the cache was attacked), on the real Redis: cluster mode is
detected once the node answers, ``stop()`` signals only our own redis-server, secrets stay out of
output, and single flight holds under upstream errors."""

from __future__ import annotations

import os
import signal

import semcache
from semcache.server import EmbeddedCluster
from tests.conftest import answer, chat, hash_embedder

# --- 7. cluster mode is detected once the node answers ----------------------------------------------


def test_cluster_mode_is_detected_when_the_node_comes_back(
    redis_cluster: EmbeddedCluster, namespace: str
) -> None:
    """Defect 7: a node that did not answer at construction gets a cluster client once it does."""
    pid = redis_cluster.nodes[0].pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # the node in the URL does not answer while the cache is built
    try:
        cache = semcache.Cache(redis_url=redis_cluster.url, embedder=hash_embedder(),
                               namespace=namespace)  # fmt: skip
    finally:
        os.kill(pid, signal.SIGCONT)
    with cache:
        stored = [cache.store(chat(f"c{i}"), answer(str(i))) for i in range(30)]
        hits = [cache.lookup(chat(f"c{i}")).layer for i in range(30)]
        assert stored.count(True) == 30 and hits.count("exact") == 30
        cache.flush()


async def test_cluster_mode_is_detected_when_the_node_comes_back_async(
    redis_cluster: EmbeddedCluster, namespace: str
) -> None:
    """Defect 7, asyncio."""
    pid = redis_cluster.nodes[0].pid()
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        cache = semcache.AsyncCache(redis_url=redis_cluster.url, embedder=hash_embedder(),
                                    namespace=namespace)  # fmt: skip
    finally:
        os.kill(pid, signal.SIGCONT)
    async with cache:
        stored = [await cache.store(chat(f"a{i}"), answer(str(i))) for i in range(30)]
        hits = [(await cache.lookup(chat(f"a{i}"))).layer for i in range(30)]
        assert stored.count(True) == 30 and hits.count("exact") == 30
        await cache.flush()
