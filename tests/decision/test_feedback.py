"""Feedback and per-entry thresholds: evidence on the entry's document in Redis, cut-offs that move."""

from __future__ import annotations

import pytest
import redis

import semcache
from semcache import CacheConfig, GuardedDecision, PerEntryThresholds
from semcache.decision.thresholds import append, decode, encode, entry_threshold
from semcache.redis.commands import APPEND
from tests.conftest import answer, chat
from tests.decision.test_decide import STORED, table_embedder

QUERY = "convert six feet into meters"


def test_entry_threshold_rules() -> None:
    assert entry_threshold([], default=0.9, delta=0.05) == 0.9
    # one wrong answer lifts the cut-off above it
    assert entry_threshold([(0.93, False)], default=0.9, delta=0.05) == pytest.approx(0.931)
    # right answers above the threshold leave it where it is
    assert entry_threshold([(0.95, True)] * 5, default=0.9, delta=0.05) == 0.9
    # enough right answers below it, and no wrong one, lower it (18 for delta 0.05)
    many = [(0.85, True)] * 18
    assert entry_threshold(many[:17], default=0.9, delta=0.05) == 0.9
    assert entry_threshold(many, default=0.9, delta=0.05) == 0.85
    assert entry_threshold(many, default=0.9, delta=0.05, floor=0.88) == 0.9
    # a looser bound needs less evidence
    assert entry_threshold([(0.85, True)] * 3, default=0.9, delta=0.2) == 0.85


def test_records_round_trip_and_the_lua_append_matches_its_twin(
    redis_url: str, namespace: str
) -> None:
    assert decode(encode(0.91234, True) + encode(1.5, False) + "junk!!") == [
        (0.912, True),
        (0.999, False),
    ]
    client = redis.Redis.from_url(redis_url)
    key = f"semcache:s:{{{namespace}}}:test"
    assert client.eval(APPEND, 1, key, encode(0.9, True), 12) is None  # no entry, no evidence
    client.hset(key, "text", "x")
    fb = ""
    for i in range(5):
        record = encode(0.9 + i / 100, i % 2 == 0)
        fb = append(fb, record, 12)
        assert client.eval(APPEND, 1, key, record, 12).decode() == fb
    assert len(fb) == 12 and decode(fb) == [(0.93, False), (0.94, True)]
    client.delete(key)
    client.close()


def _cache(redis_url: str, namespace: str, **kw: object) -> semcache.Cache:
    decision = GuardedDecision(per_entry=PerEntryThresholds(**kw))  # type: ignore[arg-type]
    config = CacheConfig(namespace=namespace, decision=decision)
    embedder = table_embedder({QUERY: 0.93, "six feet in meters": 0.86})
    return semcache.Cache(redis_url=redis_url, embedder=embedder, config=config)


def test_wrong_feedback_lifts_the_entrys_own_cut_off(redis_url: str, namespace: str) -> None:
    with _cache(redis_url, namespace) as cache:
        cache.store(chat(STORED), answer("1.83 m"))
        hit = cache.lookup(chat(QUERY))
        assert hit.layer == "semantic"
        assert cache.feedback(hit, correct=False)
        doc = cache.client.hgetall(cache._core.planner.plan(chat(STORED)).doc_key)
        assert doc[b"fb"] == b"0.930-" and float(doc[b"thr"]) == pytest.approx(0.931)
        again = cache.lookup(chat(QUERY))
        assert again.layer is None and again.reason == "below-threshold"
        assert any(
            name == "per-entry" and "cut-off 0.9310 from 1" in out for name, out in again.checks
        )
        # a store of another entry is unaffected: the evidence is the entry's own
        cache.flush()


def test_feedback_on_misses_can_lower_a_cut_off_within_the_bound(
    redis_url: str, namespace: str
) -> None:
    with _cache(redis_url, namespace, delta=0.2) as cache:
        cache.store(chat(STORED), answer("1.83 m"))
        miss = cache.lookup(chat("six feet in meters"))
        assert miss.layer is None and miss.nearest_key is not None
        for _ in range(3):
            assert cache.feedback(miss, correct=True)
        hit = cache.lookup(chat("six feet in meters"))
        assert hit.layer == "semantic" and hit.similarity == pytest.approx(0.86, abs=1e-3)
        cache.flush()


def test_feedback_without_an_entry_is_false(redis_url: str, namespace: str) -> None:
    with _cache(redis_url, namespace) as cache:
        cache.store(chat(STORED), answer("1.83 m"))
        exact = cache.lookup(chat(STORED))
        assert exact.layer == "exact" and not cache.feedback(exact, correct=True)
        hit = cache.lookup(chat(QUERY))
        cache.flush()
        assert not cache.feedback(hit, correct=False)  # the entry is gone: nothing resurrected
        assert not cache.client.exists(cache._core.planner.plan(chat(STORED)).doc_key)


async def test_async_feedback(redis_url: str, namespace: str) -> None:
    decision = GuardedDecision(per_entry=PerEntryThresholds())
    config = CacheConfig(namespace=namespace, decision=decision)
    embedder = table_embedder({QUERY: 0.93})
    async with semcache.AsyncCache(redis_url=redis_url, embedder=embedder, config=config) as cache:
        await cache.store(chat(STORED), answer("1.83 m"))
        hit = await cache.lookup(chat(QUERY))
        assert await cache.feedback(hit, correct=False)
        assert (await cache.lookup(chat(QUERY))).layer is None
        await cache.flush()
