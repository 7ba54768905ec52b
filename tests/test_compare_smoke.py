"""benchmarks/compare.py: the scale conversions and the accuracy protocol, without the bench extra.

semcache with the plain threshold and RedisVL (a core dependency) run on the real Redis with a toy
embedder: with the same vectors and the same decision, they must give the same answers at every
converted threshold. GPTCache's conversion is checked against its own scoring formula.
"""

from __future__ import annotations

import numpy as np
import pytest
import redis

import semcache
from benchmarks import _compare_eval as ev
from benchmarks._compare_systems import RedisVL, Semcache

COSINES = (-0.5, 0.0, 0.6, 0.9, 0.95, 1.0)


@pytest.mark.parametrize("scale", [ev.COSINE, ev.GPTCACHE, ev.REDISVL])
def test_scales_round_trip(scale: ev.Scale) -> None:
    for cos in COSINES:
        assert scale.to_cosine(scale.from_cosine(cos)) == pytest.approx(cos)


def test_gptcache_threshold_is_cosine_2t_minus_1() -> None:
    # SearchDistanceEvaluation: score = 4 - squared L2 distance; hit when score >= 4 * t.
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 8)))
        cos = float(a @ b)
        t = float(rng.uniform(0, 1))
        hit = 4.0 - float(np.sum((a - b) ** 2)) >= 4.0 * t
        if abs(cos - (2 * t - 1)) > 1e-9:
            assert hit == (cos >= ev.GPTCACHE.to_cosine(t))


def test_protocol_counts_a_wrong_candidate_as_a_false_hit() -> None:
    data = ev.group_pairs("toy", [("q1", "a", True), ("q1", "b", False), ("q2", "c", False)])
    assert [g.good for g in data.groups] == [frozenset({"a"}), frozenset()]
    point = ev.score(data.groups, ["b", "c"], 0.9, 0.9)
    assert (point.true_hits, point.false_hits, point.precision, point.recall) == (0, 2, 0.0, 0.0)
    point = ev.score(data.groups, ["a", None], 0.9, 0.9)
    assert (point.precision, point.recall, point.hit_rate) == (1.0, 1.0, 0.5)


def test_matched_takes_the_most_recall_at_the_target() -> None:
    groups = ev.group_pairs(
        "toy", [("q1", "a", True), ("q2", "b", False), ("q3", "c", True)]
    ).groups
    nearest = [ev.Found("a", 0.95), ev.Found("b", 0.85), ev.Found("c", 0.80)]
    curve = ev.sweep(ev.COSINE, groups, nearest)
    best = ev.matched(curve, 0.95)
    # Ties go to the lowest threshold with the same outcome: just above the wrong candidate's 0.85.
    assert best is not None and best.recall == 0.5 and 0.85 < best.cosine <= 0.8525
    assert ev.matched(curve, 1.01) is None


def toy_embedder() -> semcache.CallableEmbedder:
    vectors = {
        "query": [1.0, 0.0, 0.0],
        "close": [0.97, 0.243, 0.0],
        "far": [0.6, 0.0, 0.8],
        "other": [0.0, 1.0, 0.0],
    }

    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray([vectors.get(t, [0.0, 0.0, 1.0]) for t in texts], dtype=np.float32)

    return semcache.CallableEmbedder(embed, model_id="compare-toy", dimension=3)


def test_semcache_plain_threshold_and_redisvl_agree(redis_url: str, namespace: str) -> None:
    embedder = toy_embedder()
    one = lambda text: embedder.embed([text])[0]  # noqa: E731
    config = semcache.CacheConfig(decision=semcache.ThresholdDecision())
    systems = [
        Semcache("semcache", redis_url, config, embedder, namespace),
        RedisVL("redisvl", redis.Redis.from_url(redis_url), one, f"{namespace}-redisvl"),
    ]
    try:
        for system in systems:
            for scope, candidates in (("s1", ("close", "far")), ("s2", ("far", "other"))):
                for text in candidates:
                    system.store(text, text, scope)
        for cos in (0.5, 0.7, 0.9, 0.99):
            answers = [
                [
                    s.lookup("query", scope, s.scale.from_cosine(cos)).answer
                    for scope in ("s1", "s2")
                ]
                for s in systems
            ]
            expected = ["close" if cos <= 0.97 else None, "far" if cos <= 0.6 else None]
            assert answers == [expected, expected]
    finally:
        for system in systems:
            system.close()
