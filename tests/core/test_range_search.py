"""The semantic layer's range search (``CacheConfig(search="range")``, the default), against a real
Redis: it fetches exactly what the decision stage could accept and nothing beyond, where a KNN
(``search="knn"``) fetches the nearest however far."""

from __future__ import annotations

import dataclasses
from collections.abc import Generator, Sequence
from typing import Any

import pytest

import semcache
from semcache import Cache, CacheConfig, SecondOpinion, ThresholdDecision
from semcache._errors import ConfigurationError
from semcache.core.semantic import RADIUS_SLACK
from semcache.decision.protocol import Candidate, Verdict
from semcache.redis import commands
from tests.conftest import answer, chat
from tests.core.test_hybrid import Sent
from tests.decision.test_decide import STORED, table_embedder

#: Cosine similarities to STORED around the cut-off 0.9, and far from it.
SIMILAR = {"a": 0.95, "b": 0.9004, "c": 0.8996, "d": 0.86, "e": 0.3}


def build(redis_url: str, namespace: str, search: str, decision: Any) -> Cache:
    config = CacheConfig(namespace=namespace, decision=decision, search=search)  # type: ignore[arg-type]
    return Cache(redis_url=redis_url, embedder=table_embedder(SIMILAR), config=config)


@pytest.mark.parametrize("decision", [ThresholdDecision(), semcache.GuardedDecision()])
def test_a_range_search_decides_as_the_knn_and_reports_only_what_it_fetched(
    redis_url: str, namespace: str, decision: Any
) -> None:
    """Just above the cut-off a hit, just below a miss, in both modes; the KNN's misses name their
    nearest entry, the range search's none (it fetched nothing), and it sent a range query whose
    radius is the cut-off's distance."""
    with build(redis_url, namespace, "range", decision) as ranged:
        knn = Cache(redis_client=ranged.client, embedder=table_embedder(SIMILAR),
                    config=dataclasses.replace(ranged.config, search="knn"))  # fmt: skip
        ranged.store(chat(STORED), answer("1.83 m"))
        sent = Sent(ranged._executor)
        for text, similarity in SIMILAR.items():
            r, k = ranged.lookup(chat(text)), knn.lookup(chat(text))
            assert r.layer == k.layer == ("semantic" if similarity >= 0.9 else None), text
            if similarity >= 0.9:
                assert r.response == k.response == answer("1.83 m")
                assert r.similarity == pytest.approx(similarity, abs=1e-4)
            else:
                assert r.best_similarity is None and r.reason == "no-candidates"
                assert k.best_similarity == pytest.approx(similarity, abs=1e-4)
                assert k.reason == "below-threshold"
        radius = f"VECTOR_RANGE {1 - 0.9 + RADIUS_SLACK:.6f} $vec"
        assert sent.searches() and all(radius in q and "KNN" not in q for q in sent.searches())
        assert all(f"$EPSILON: {commands.RANGE_EPSILON}" in q for q in sent.searches())
        ranged.flush()


def test_a_range_search_reaches_down_to_the_second_opinions_band(
    redis_url: str, namespace: str
) -> None:
    """A band below the cut-off (here 0.1) is searched: the entry at 0.86 is fetched and judged,
    the one at 0.3 never is. A radius at the cut-off would miss the band's candidates unasked."""
    asked: list[str] = []

    def judge(query: str, candidate: str) -> bool:
        asked.append(query)
        return True

    decision = semcache.GuardedDecision(opinion=SecondOpinion(judge, below=0.1, above=0.0))
    with build(redis_url, namespace, "range", decision) as cache:
        cache.store(chat(STORED), answer("1.83 m"))
        sent = Sent(cache._executor)
        hit = cache.lookup(chat("d"))
        assert hit.layer == "semantic" and asked == ["d"]
        assert cache.lookup(chat("e")).layer is None and asked == ["d"]
        assert all(f"VECTOR_RANGE {0.2 + RADIUS_SLACK:.6f} " in q for q in sent.searches())
        cache.flush()


class Anything:
    """A decision of the user's own that declares no floor: it serves the nearest candidate."""

    return_fields: tuple[str, ...] = ()

    def decide(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> Generator[Any, Any, Verdict]:
        return Verdict(candidates[0] if candidates else None, "anything")
        yield


def test_a_decision_without_a_floor_is_given_the_nearest_by_a_knn(
    redis_url: str, namespace: str
) -> None:
    with build(redis_url, namespace, "range", Anything()) as cache:
        cache.store(chat(STORED), answer("1.83 m"))
        sent = Sent(cache._executor)
        far = cache.lookup(chat("e"))
        assert far.layer == "semantic" and far.similarity == pytest.approx(0.3, abs=1e-4)
        assert sent.searches() and all(
            "KNN" in q and "VECTOR_RANGE" not in q for q in sent.searches()
        )
        cache.flush()


def test_a_flat_index_is_range_searched_without_hnsws_epsilon(
    redis_url: str, namespace: str
) -> None:
    config = CacheConfig(namespace=namespace, decision=ThresholdDecision(),
                         index=semcache.IndexParams(algorithm="flat"))  # fmt: skip
    with Cache(redis_url=redis_url, embedder=table_embedder(SIMILAR), config=config) as cache:
        cache.store(chat(STORED), answer("1.83 m"))
        sent = Sent(cache._executor)
        assert cache.lookup(chat("b")).layer == "semantic"
        assert cache.lookup(chat("c")).layer is None
        assert sent.searches() and all(
            "VECTOR_RANGE" in q and "EPSILON" not in q for q in sent.searches()
        )
        cache.flush()


def test_the_floor_reaches_the_per_entry_thresholds_floor() -> None:
    per_entry = semcache.PerEntryThresholds(floor=0.6)
    assert semcache.GuardedDecision(per_entry=per_entry).floor(0.9) == pytest.approx(0.6)
    opinion = SecondOpinion(lambda q, c: True, below=0.1)
    both = semcache.GuardedDecision(per_entry=per_entry, opinion=opinion)
    assert both.floor(0.9) == pytest.approx(0.5)
    assert semcache.GuardedDecision().floor(0.9) == pytest.approx(0.9)
    assert ThresholdDecision().floor(0.75) == 0.75


def test_an_unknown_search_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="search"):
        CacheConfig(search="nearest")  # type: ignore[arg-type]


def test_a_refused_range_search_turns_to_knn_and_loses_nothing(
    redis_url: str, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Another process made the namespace's index FLAT; this cache, configured for HNSW, asks the
    range search with HNSW's EPSILON, which the real server refuses. That lookup misses (logged,
    not an error, not an outage) and the next ones search by KNN and hit."""
    flat = CacheConfig(namespace=namespace, decision=ThresholdDecision(),
                       index=semcache.IndexParams(algorithm="flat"))  # fmt: skip
    with Cache(redis_url=redis_url, embedder=table_embedder(SIMILAR), config=flat) as maker:
        maker.store(chat(STORED), answer("1.83 m"))
    with build(redis_url, namespace, "range", ThresholdDecision()) as cache:
        first = cache.lookup(chat("a"))
        assert first.layer is None and first.reason == "search-failed"
        assert "refused the range search" in caplog.text
        assert cache.available and not cache._core.semantic.ranged
        sent = Sent(cache._executor)
        hit = cache.lookup(chat("a"))
        assert hit.layer == "semantic" and hit.response == answer("1.83 m")
        assert cache.lookup(chat("c")).best_similarity == pytest.approx(0.8996, abs=1e-4)
        assert sent.searches() and all("KNN" in q for q in sent.searches())
        cache.flush()
