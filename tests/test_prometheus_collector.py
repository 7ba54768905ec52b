"""semcache.prometheus.SemcacheCollector in a real prometheus_client registry."""

from __future__ import annotations

from conftest import answer, chat
from prometheus_client import CollectorRegistry, generate_latest

import semcache
from semcache.prometheus import SemcacheCollector


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_the_collector_reports_hits_per_layer(wrap_cache: semcache.Cache) -> None:
    registry = CollectorRegistry()
    registry.register(SemcacheCollector(wrap_cache))
    request = chat("scraped")
    wrap_cache.lookup(request)
    wrap_cache.store(request, answer("yes"))
    for _ in range(3):
        wrap_cache.lookup(request)
    labels = {"namespace": wrap_cache.namespace, "layer": "exact"}
    assert sample(registry, "semcache_hits_total", **labels) == 3
    assert sample(registry, "semcache_saved_usd_total", **labels) > 0  # type: ignore[operator]
    wrap_cache.lookup(request)
    assert sample(registry, "semcache_hits_total", **labels) == 4  # read again on every scrape
    assert b"semcache_lookup_duration_seconds_bucket" in generate_latest(registry)


def test_cluster_wide_by_default_per_replica_when_local(
    wrap_cache: semcache.Cache, redis_url: str
) -> None:
    from conftest import hash_embedder

    request = chat("two replicas")
    wrap_cache.store(request, answer("yes"))
    with semcache.Cache(
        redis_url=redis_url, embedder=hash_embedder(), namespace=wrap_cache.namespace
    ) as other:
        other.lookup(request)
        other.stats()  # flushed to Redis
        wrap_cache.lookup(request)
        cluster, replica = CollectorRegistry(), CollectorRegistry()
        cluster.register(SemcacheCollector(wrap_cache))
        replica.register(SemcacheCollector(wrap_cache, local=True))
        labels = {"namespace": wrap_cache.namespace, "layer": "exact"}
        assert sample(cluster, "semcache_hits_total", **labels) == 2
        assert sample(replica, "semcache_hits_total", **labels) == 1
