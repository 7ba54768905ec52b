"""benchmarks/bench_search_floor.py: the searches it times are the ones it says (real Redis, toy
vectors): the cache's own search (a range query by default) and its KNN, and RedisVL's kind of
range query, which finds a stored text within its radius and returns nothing beyond it, where the
KNN still returns its k nearest."""

from __future__ import annotations

import numpy as np
import redis

import semcache
from benchmarks import _compare_speed as sp
from benchmarks import bench_search_floor as floor
from tests.test_compare_speed import TEXTS, Table


def test_the_range_query_finds_within_its_radius_and_the_knn_beyond(
    redis_url: str, namespace: str
) -> None:
    table = Table()
    client = redis.Redis.from_url(redis_url)
    vectors = np.vstack([table.one(t) for t in TEXTS])
    knn_config = semcache.CacheConfig(namespace=namespace, search="knn")
    with (
        semcache.Cache(redis_url=redis_url, embedder=table.embedder("toy"),
                       namespace=namespace) as cache,
        semcache.Cache(redis_url=redis_url, embedder=table.embedder("toy"),
                       config=knn_config) as knn_cache,
    ):  # fmt: skip
        pairs = [(sp.sy.chat(t), sp.sy.response(f"#{i} answer")) for i, t in enumerate(TEXTS)]
        assert cache.store_many(pairs, tenant="lat", vectors=vectors) == len(TEXTS)
        make = floor.searches(cache, knn_cache)
        near = make(vectors[7].astype(np.float32).tobytes())
        assert set(near) == {"semcache", "knn", "knn_batches"} | {
            f"range_eps_{e}" for e in floor.EPSILONS
        }
        assert "VECTOR_RANGE" in str(near["semcache"][2]) and "KNN" in str(near["knn"][2])
        for name, command in near.items():
            top = floor.first(client.execute_command(*command))
            assert top is not None and top[0] == TEXTS[7] and top[1] < 1e-4, name
        far = make((-vectors[7]).astype(np.float32).tobytes())
        knn_reply = client.execute_command(*far["knn"])
        assert floor.first(knn_reply) is not None  # its nearest, however far
        ranged = [f"range_eps_{e}" for e in floor.EPSILONS]
        for name in ("semcache", *ranged):
            assert floor.first(client.execute_command(*far[name])) is None, name
        cache.flush()
