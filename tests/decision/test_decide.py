"""The decision stage through a real cache: guard, per-entry cut-offs, second opinion, next candidate."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import numpy as np
import pytest

import semcache
from semcache import Cache, CacheConfig, Guard, GuardedDecision, SecondOpinion, ThresholdDecision
from semcache.core.types import Entry
from semcache.decision.protocol import Candidate
from tests.conftest import answer, chat

STORED = "Convert 6 feet to meters."


def table_embedder(similar: dict[str, float]) -> semcache.CallableEmbedder:
    """Texts in ``similar`` get exactly that cosine similarity to STORED (and to each other's
    base direction); any other text is STORED's own direction."""

    def embed(texts: list[str]) -> np.ndarray:
        rows = []
        for text in texts:
            s = similar.get(text, 1.0)
            spread = [0.0] * 6
            slot = int(hashlib.sha256(text.encode()).hexdigest(), 16) % 6  # not hash(): per process
            spread[slot] = math.sqrt(max(0.0, 1 - s * s))
            rows.append([s, *spread, 0.0])
        return np.asarray(rows, dtype=np.float32)

    return semcache.CallableEmbedder(embed, model_id="table", dimension=8)


@pytest.fixture
def make(redis_url: str, namespace: str) -> Iterator[object]:
    made: list[Cache] = []

    def build(decision: object, similar: dict[str, float], threshold: float = 0.9) -> Cache:
        config = CacheConfig(namespace=namespace, threshold=threshold, decision=decision)
        cache = Cache(redis_url=redis_url, embedder=table_embedder(similar), config=config)
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.flush()
        cache.close()


def test_the_default_decision_is_the_guard_and_the_verifier(redis_url: str, namespace: str) -> None:
    with Cache(redis_url=redis_url, embedder=table_embedder({}), namespace=namespace) as cache:
        assert isinstance(cache._core.decision, GuardedDecision)
        assert cache._core.decision.guard == Guard()
        assert cache._core.decision.verifier is not None
        cache.flush()


def test_guard_turns_a_changed_number_into_a_miss_and_says_why(make) -> None:  # type: ignore[no-untyped-def]
    query = "Convert 7 feet to meters."
    plain = make(ThresholdDecision(), {query: 0.97})
    plain.store(chat(STORED), answer("1.83 m"))
    assert plain.lookup(chat(query)).layer == "semantic"  # the confident wrong answer

    guarded = make(GuardedDecision(guard=Guard()), {query: 0.97})
    result = guarded.lookup(chat(query))
    assert result.layer is None and result.reason == "guard"
    assert ("guard", "reject: numbers 7 != 6") in result.checks
    assert result.nearest_key is not None and result.best_similarity == pytest.approx(
        0.97, abs=1e-3
    )


def test_a_rejected_candidate_hands_over_to_the_next_one(make) -> None:  # type: ignore[no-untyped-def]
    query, other = "Convert 7 feet to meters.", "Convert 7 feet to meters!"
    cache = make(GuardedDecision(guard=Guard()), {query: 0.97, other: 0.95})
    cache.store(chat(STORED), answer("1.83 m"))
    cache.store(chat(other), answer("2.13 m"))
    result = cache.lookup(chat(query))
    assert result.layer == "semantic" and result.response == answer("2.13 m")
    assert [name for name, _ in result.checks].count("guard") == 2


def test_second_opinion_is_asked_only_inside_the_band(make) -> None:  # type: ignore[no-untyped-def]
    asked: list[tuple[str, str]] = []

    def judge(query: str, candidate: str) -> bool:
        asked.append((query, candidate))
        return "7" not in query

    clear, borderline, wrong = "convert 6 feet to meters", "6 feet in meters?", "7 feet in meters?"
    opinion = SecondOpinion(judge, below=0.1, above=0.05)
    similar = {clear: 0.99, borderline: 0.85, wrong: 0.85, "far away": 0.5}
    cache = make(GuardedDecision(opinion=opinion), similar)
    cache.store(chat(STORED), answer("1.83 m"))
    assert cache.lookup(chat(clear)).layer == "semantic" and asked == []
    hit = cache.lookup(chat(borderline))
    assert hit.layer == "semantic" and asked == [(borderline, STORED)]
    assert ("opinion", "accept: True") in hit.checks
    miss = cache.lookup(chat(wrong))
    assert miss.layer is None and miss.reason == "opinion" and len(asked) == 2
    assert cache.lookup(chat("far away")).layer is None and len(asked) == 2


def test_a_failing_judge_is_a_miss_not_an_error(make) -> None:  # type: ignore[no-untyped-def]
    def judge(query: str, candidate: str) -> bool:
        raise RuntimeError("judge down")

    query = "6 feet in meters?"
    cache = make(GuardedDecision(opinion=SecondOpinion(judge)), {query: 0.88})
    cache.store(chat(STORED), answer("1.83 m"))
    result = cache.lookup(chat(query))
    assert result.layer is None and result.reason == "opinion"
    assert ("opinion", "reject: judge failed (RuntimeError)") in result.checks


async def test_async_cache_awaits_the_async_judge(redis_url: str, namespace: str) -> None:
    calls: list[str] = []

    async def ajudge(query: str, candidate: str) -> float:
        calls.append(query)
        return 0.8

    query = "6 feet in meters?"
    opinion = SecondOpinion(lambda q, c: 0.0, ajudge=ajudge, accept=0.7)
    config = CacheConfig(namespace=namespace, decision=GuardedDecision(opinion=opinion))
    embedder = table_embedder({query: 0.87})
    async with semcache.AsyncCache(redis_url=redis_url, embedder=embedder, config=config) as cache:
        await cache.store(chat(STORED), answer("1.83 m"))
        result = await cache.lookup(chat(query))
        assert result.layer == "semantic" and calls == [query]
        assert ("opinion", "accept: 0.8000") in result.checks
        await cache.flush()


def test_decide_is_a_pure_flow_over_candidates() -> None:
    entry = Entry(response=answer("x"), kind="chat", model="m")
    near = Candidate("a", 0.97, entry, "Convert 7 feet to meters.", {})
    far = Candidate("b", 0.93, entry, "Convert 6 feet to meters!", {})
    flow = GuardedDecision(guard=Guard()).decide(STORED, [near, far], 0.9)
    with pytest.raises(StopIteration) as done:
        next(flow)
    verdict = done.value.value
    assert verdict.accepted is far
    assert verdict.checks[1] == ("guard", "reject: numbers 6 != 7")


def test_judge_calls_and_their_cost_are_counted_as_semantic_overhead(make) -> None:  # type: ignore[no-untyped-def]
    query = "How many meters are 6 feet?"
    opinion = SecondOpinion(lambda q, c: True, below=0.1, above=0.1, cost_usd=0.0005)
    cache = make(GuardedDecision(guard=None, opinion=opinion), {query: 0.92})
    cache.store(chat(STORED), answer("1.83 m"))
    result = cache.lookup(chat(query))
    assert result.layer == "semantic" and result.judge_calls == 1
    assert result.judge_usd == pytest.approx(0.0005)
    semantic = cache.stats().layers["semantic"]
    assert semantic.judge_calls == 1
    assert semantic.overhead_usd == pytest.approx(0.0005)
    assert cache.stats().to_dict()["layers"]["semantic"]["judge_calls"] == 1
    assert "semcache_judge_calls_total" in cache.stats().prometheus()


def test_feedback_is_counted_in_stats(make) -> None:  # type: ignore[no-untyped-def]
    query = "How many meters are 6 feet?"
    cache = make(GuardedDecision(guard=None), {query: 0.95})
    cache.store(chat(STORED), answer("1.83 m"))
    hit = cache.lookup(chat(query))
    assert hit.layer == "semantic"
    assert cache.feedback(hit, correct=False)
    exact = cache.lookup(chat(STORED))
    assert not cache.feedback(exact, correct=True)  # an exact hit has no evidence to update
    stats = cache.stats()
    assert (stats.feedback, stats.wrong_feedback, stats.feedback_applied) == (2, 1, 1)
    assert stats.to_dict()["feedback"] == {"total": 2, "wrong": 1, "applied": 1}
