"""The L1 tier: exact hits served from process memory, dropped everywhere on invalidation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest

from semcache import Cache, CacheConfig
from semcache.core.l1 import L1, message
from semcache.core.types import Entry
from semcache.redis.keys import tag_digest
from tests.conftest import answer, chat, hash_embedder

ENTRY = Entry(response={"ok": 1}, kind="chat", model="m", tags=("doc:1",))


def key(ns: str, tenant: str, digest: str) -> str:
    return f"semcache:x:{ns}:{tenant}:{digest}"


def test_l1_is_a_ttl_lru() -> None:
    now = [0.0]
    l1 = L1(size=2, ttl=10, clock=lambda: now[0])
    for name in ("a", "b", "c"):
        assert l1.put(key("ns", "t", name), ENTRY, l1.epoch)
    assert l1.get(key("ns", "t", "a")) is None  # least recently used, evicted
    assert l1.get(key("ns", "t", "b")) == ENTRY
    now[0] = 10.0
    assert l1.get(key("ns", "t", "b")) is None  # expired


def test_a_read_racing_an_invalidation_is_not_cached() -> None:
    l1 = L1(size=8, ttl=10)
    epoch = l1.epoch
    l1.apply("ns", message(keys=[key("ns", "t", "other")]))
    assert not l1.put(key("ns", "t", "a"), ENTRY, epoch)
    assert l1.get(key("ns", "t", "a")) is None


@pytest.mark.parametrize(
    ("note", "dropped"),
    [
        (message(keys=[key("ns", "t1", "a")]), {"t1:a"}),
        (message(tags=[tag_digest("doc:1")], tenant="t1"), {"t1:a"}),
        (message(tags=[tag_digest("doc:1")], tenant=None), {"t1:a", "t2:a"}),
        (message(tenant="t2", drop=True), {"t2:a", "t2:b"}),
        (message(drop=True), {"t1:a", "t2:a", "t2:b"}),
        (b"not json", {"t1:a", "t2:a", "t2:b", "other"}),  # unreadable: clear everything
    ],
)
def test_messages_drop_what_they_name(note: str | bytes, dropped: set[str]) -> None:
    l1 = L1(size=8, ttl=10)
    names = {"t1:a": ENTRY, "t2:a": ENTRY, "t2:b": Entry(response={}, kind="chat", model="m")}
    for name, entry in names.items():
        l1.put(key("ns", *name.split(":")), entry, l1.epoch)
    l1.put(key("other-ns", "t1", "a"), ENTRY, l1.epoch)
    l1.apply("ns", note)
    kept = {n for n in names if l1.get(key("ns", *n.split(":"))) is not None}
    assert set(names) - kept == dropped - {"other"}
    assert (l1.get(key("other-ns", "t1", "a")) is None) == ("other" in dropped)


@pytest.fixture
def l1_caches(redis_url: str, namespace: str) -> Iterator[tuple[Cache, Cache]]:
    """Two caches with an L1 each, as two processes would have, subscribed to invalidations."""
    config = CacheConfig(namespace=namespace, l1_size=64, l1_ttl=60)
    with (
        Cache(redis_url=redis_url, embedder=hash_embedder(), config=config) as a,
        Cache(redis_url=redis_url, embedder=hash_embedder(), config=config) as b,
    ):
        for cache in (a, b):
            assert cache._listener is not None and cache._listener.subscribed.wait(10)
        yield a, b
        a.flush()


def eventually(check: Callable[[], bool], seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.01)
    return False


def test_exact_hits_fill_the_l1_and_repeats_are_served_from_it(
    l1_caches: tuple[Cache, Cache],
) -> None:
    a, _ = l1_caches
    a.store(chat("viral prompt"), answer("viral answer"))
    first = a.lookup(chat("viral prompt"))
    assert (first.layer, first.tried) == ("exact", ("l1", "exact"))
    second = a.lookup(chat("viral prompt"))
    assert (second.layer, second.tried) == ("l1", ("l1",))
    assert second.response == answer("viral answer") and second.similarity == 1.0
    a.client.delete(a.plan(chat("viral prompt")).exact_key)  # behind the cache's back
    assert a.lookup(chat("viral prompt")).layer == "l1"  # still served from memory
    stats = a.stats(local=True)
    assert (stats.layers["l1"].lookups, stats.layers["l1"].hits) == (3, 2)


@pytest.mark.parametrize("how", ["key", "tag", "tenant", "flush"])
def test_invalidation_in_one_process_drops_the_copies_of_another(
    l1_caches: tuple[Cache, Cache], how: str
) -> None:
    a, b = l1_caches
    request = chat("cached everywhere")
    a.store(request, answer("v1"), tenant="acme", tags=("doc:7",))
    for cache in (a, b):
        cache.lookup(request, tenant="acme")
        assert cache.lookup(request, tenant="acme").layer == "l1"
    plan = a.plan(request, tenant="acme")
    if how == "key":
        b.invalidate(keys=[plan.digest], tenant="acme")
    elif how == "tag":
        b.invalidate(tags=("doc:7",), tenant="acme")
    elif how == "tenant":
        b.invalidate_tenant("acme")
    else:
        b.flush()
    assert b.lookup(request, tenant="acme").layer is None  # its own copy went at once
    assert eventually(lambda: a._core.l1 is not None and len(a._core.l1) == 0)
    assert a.lookup(request, tenant="acme").layer is None


def test_other_tenants_copies_survive_a_tenant_invalidation(
    l1_caches: tuple[Cache, Cache],
) -> None:
    a, b = l1_caches
    for tenant in ("acme", "globex"):
        a.store(chat("shared question"), answer(tenant), tenant=tenant)
        a.lookup(chat("shared question"), tenant=tenant)
    b.invalidate_tenant("acme")
    assert eventually(lambda: a._core.l1 is not None and len(a._core.l1) == 1)
    assert a.lookup(chat("shared question"), tenant="globex").layer == "l1"


def test_l1_is_off_by_default_and_listener_stops_on_close(redis_url: str, namespace: str) -> None:
    with Cache(redis_url=redis_url, embedder=hash_embedder(), namespace=namespace) as plain:
        assert plain._core.l1 is None and plain._listener is None
    before = {t.name for t in threading.enumerate()}
    config = CacheConfig(namespace=namespace, l1_size=4)
    cache = Cache(redis_url=redis_url, embedder=hash_embedder(), config=config)
    assert "semcache-l1" in {t.name for t in threading.enumerate()} - before
    cache.close()
    assert eventually(lambda: "semcache-l1" not in {t.name for t in threading.enumerate()})


def test_l1_works_on_a_cluster(cluster_url: str, namespace: str) -> None:
    config = CacheConfig(namespace=namespace, l1_size=8)
    with (
        Cache(redis_url=cluster_url, embedder=hash_embedder(), config=config) as a,
        Cache(redis_url=cluster_url, embedder=hash_embedder(), config=config) as b,
    ):
        for cache in (a, b):
            assert cache._listener is not None and cache._listener.subscribed.wait(10)
        a.store(chat("hot"), answer("x"), tags=("t",))
        a.lookup(chat("hot"))
        assert a.lookup(chat("hot")).layer == "l1"
        b.invalidate(tags=("t",))
        assert eventually(lambda: a.lookup(chat("hot")).layer is None)
        a.flush()
