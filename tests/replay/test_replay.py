"""Replay through a real cache: hand-built logs with hand-computed figures, and the sweep."""

from __future__ import annotations

import json
import math
import uuid
from pathlib import Path

import numpy as np
import pytest
from conftest import answer, chat

import semcache
from semcache.replay._figures import Figures
from semcache.replay._logs import read_log
from semcache.replay._replay import replay, threshold_grid

# Texts with hand-chosen vectors, so every similarity is known:
#   sim(A, A2) = 0.95, sim(A, B) = 0.88, sim(A2, B) = 0.95 * 0.88 = 0.836, C is orthogonal.
A, A2, B, C = (
    "How do I reset my password?",
    "how can I reset my password",
    "How do I reset my username?",
    "What is the boiling point of water?",
)
VECTORS = {
    A: [1.0, 0.0, 0.0, 0.0],
    A2: [0.95, math.sqrt(1 - 0.95**2), 0.0, 0.0],
    B: [0.88, 0.0, math.sqrt(1 - 0.88**2), 0.0],
    C: [0.0, 0.0, 0.0, 1.0],
}


def table_embedder() -> semcache.CallableEmbedder:
    def embed(texts: list[str]) -> np.ndarray:
        return np.asarray([VECTORS[t] for t in texts], dtype=np.float32)

    return semcache.CallableEmbedder(embed, model_id="test-table", dimension=4)


def usage_answer(prompt: int, completion: int) -> dict:
    body = answer("...")
    body["usage"] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    return body


def line(text: str, group: str, tokens: tuple[int, int], **extra: object) -> str:
    request = chat(text, system=extra.pop("system", None))  # type: ignore[arg-type]
    return json.dumps(
        {"request": request, "response": usage_answer(*tokens), "group": group, **extra}
    )


def hand_log(path: Path) -> Path:
    lines = [
        line(A, "g1", (12, 5)),  # 1 miss, stored
        line(A, "g1", (12, 5)),  # 2 exact hit
        line(A2, "g1", (13, 6)),  # 3 semantic on A (0.95): correct
        line(B, "g2", (20, 8)),  # 4 semantic on A (0.88) below 0.9; a false hit at 0.85
        line(C, "g3", (9, 3)),  # 5 miss
        line(B, "g2", (20, 8)),  # 6 exact at 0.9 (B stored at 4); false semantic at 0.85
        line(A2, "g1", (13, 6), tenant="other"),  # 7 another tenant: another scope, miss
        "{not json",  # 8 bad
        json.dumps({"request": {"model": "gpt-4o-mini"}}),  # 9 bad: no messages
        line(A2, "g1", (13, 6), system="Be brief."),  # 10 another system prompt: miss
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


#: The decision the hand-computed figures assume: the lexical guard alone, without the verifier.
GUARD_ONLY = semcache.GuardedDecision(guard=semcache.Guard())

# Hand-computed: threshold -> (exact hits, semantic hits, false hits, tokens saved)
EXPECTED = {
    0.85: (1, 3, 2, 4 * 17),  # hits 2, 3, 4, 6 all answered by A's entry (12 + 5 tokens)
    0.90: (2, 1, 0, 17 + 28 + 17),  # 2 on A, 6 on B (20 + 8), 3 on A
    0.96: (2, 0, 0, 17 + 28),  # A2 misses and is stored; 2 and 6 exact
}


@pytest.fixture
def table_cache(redis_url: str, namespace: str):
    # the figures were computed by hand for the guard alone (the verifier is tested on its own)
    config = semcache.CacheConfig(namespace=namespace, ttl=None, decision=GUARD_ONLY)
    with semcache.Cache(redis_url=redis_url, embedder=table_embedder(), config=config) as cache:
        yield cache
        cache.flush()


def test_bad_lines_are_named_and_skipped(tmp_path: Path) -> None:
    log = read_log(hand_log(tmp_path / "log.jsonl"))
    assert len(log.records) == 8
    assert [(b.line, b.error.split(":")[0]) for b in log.bad_lines] == [
        (8, "not JSON"),
        (9, "invalid request"),
    ]
    assert [r.line for r in log.records] == [1, 2, 3, 4, 5, 6, 7, 10]


@pytest.mark.parametrize("threshold", sorted(EXPECTED))
def test_replay_matches_hand_computed_figures(table_cache, tmp_path: Path, threshold) -> None:
    report = replay(table_cache, read_log(hand_log(tmp_path / "log.jsonl")), threshold=threshold)
    f = report.figures
    exact, semantic, false_hits, tokens = EXPECTED[threshold]
    assert (f.exact.hits, f.semantic.hits, f.semantic.false_hits) == (exact, semantic, false_hits)
    assert f.requests == 8 and f.hit_rate == (exact + semantic) / 8
    assert f.tokens_saved == tokens
    if semantic:
        assert f.semantic.precision == (semantic - false_hits) / semantic
    assert len(report.bad_lines) == 2
    assert f.exact.latency_ms is None or f.exact.latency_ms["p50"] >= 0


def test_sweep_agrees_with_separate_replays(redis_url: str, tmp_path: Path) -> None:
    path = hand_log(tmp_path / "log.jsonl")
    grid = sorted(EXPECTED)
    with semcache.Cache(
        redis_url=redis_url,
        embedder=table_embedder(),
        config=semcache.CacheConfig(namespace=f"sweep-a-{uuid.uuid4().hex[:8]}", ttl=None),
    ) as cache:
        swept = replay(cache, read_log(path), threshold=0.9, sweep=grid)
        cache.flush()
    for figures in swept.sweep:
        with semcache.Cache(
            redis_url=redis_url,
            embedder=table_embedder(),
            config=semcache.CacheConfig(namespace=f"sweep-b-{uuid.uuid4().hex[:8]}", ttl=None),
        ) as cache:
            single = replay(cache, read_log(path), threshold=figures.threshold).figures
            cache.flush()
        assert _comparable(figures) == _comparable(single)


def _comparable(f: Figures) -> dict:
    out = f.to_json()
    out.pop("lookup_ms", None)
    for layer in out["layers"].values():
        layer.pop("lookup_ms", None)
    return out


def test_threshold_grid() -> None:
    assert threshold_grid("0.8:0.9:0.05") == [0.8, 0.85, 0.9]
    assert threshold_grid("0.9:0.9:0.01") == [0.9]
    with pytest.raises(ValueError):
        threshold_grid("0.9:0.8:0.01")


def test_dollars_come_from_the_price_table_and_missing_responses_are_unpriced(
    table_cache, tmp_path: Path
) -> None:
    from semcache.accounting.prices import PriceTable

    path = hand_log(tmp_path / "log.jsonl")
    with path.open("a") as handle:  # C again without a response, then C: a hit on an unknown entry
        handle.write(json.dumps({"request": chat(C, model="gpt-4o"), "group": "g4"}) + "\n")
        handle.write(json.dumps({"request": chat(C, model="gpt-4o"), "group": "g4"}) + "\n")
    f = replay(table_cache, read_log(path), threshold=0.9).figures
    cost = PriceTable().cost
    expected = 2 * cost("gpt-4o-mini", 12, 5) + cost("gpt-4o-mini", 20, 8)
    assert f.usd_saved == pytest.approx(expected)
    assert f.exact.hits == 3 and f.unpriced_hits == 1


@pytest.mark.slow
def test_sweep_agrees_with_real_replays_on_a_generated_log(redis_url, embedder, tmp_path) -> None:
    """Real model, default decision stage (threshold + lexical guard), several tenants and turns."""
    from semcache import datasets
    from semcache.replay._logs import LogRecord

    lines = datasets.generate_log(160, seed=5)
    records = [LogRecord(request=x["request"], response=x["response"], tenant=x["tenant"],
                         group=x["group"]) for x in lines]  # fmt: skip
    grid = [0.8, 0.86, 0.92]

    def run(threshold: float, sweep: list[float]):
        ns = f"gen-{uuid.uuid4().hex[:8]}"
        config = semcache.CacheConfig(namespace=ns, ttl=None)
        with semcache.Cache(redis_url=redis_url, embedder=embedder, config=config) as cache:
            report = replay(cache, records, threshold=threshold, sweep=sweep)
            cache.flush()
        return report

    swept = run(0.9, grid)
    assert _comparable(swept.figures) == _comparable(run(0.9, [0.9]).sweep[0])
    for figures in swept.sweep:
        single = run(figures.threshold, []).figures
        assert _comparable(figures) == _comparable(single)
    assert swept.sweep[0].semantic.hits > swept.sweep[-1].semantic.hits > 0
    assert (
        swept.sweep[0].exact.hits < swept.sweep[-1].exact.hits
    )  # fewer semantic hits: more stored
