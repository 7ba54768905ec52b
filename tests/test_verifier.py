"""The learned verifier: the shipped artifact's decisions, and its place in the default decision."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import semcache
from semcache import AsyncCache, Cache, CacheConfig, Guard, GuardedDecision, Verifier
from semcache.core.ops import Call, drive, refuse
from semcache.core.types import Entry
from semcache.decision.alignment import FEATURES
from semcache.decision.decide import Candidate, decision_floor
from semcache.decision.verifier import artifact_dir, metadata
from tests.conftest import answer, chat
from tests.decision.test_decide import table_embedder

# Pairs the guard lets through (no number, negation, unit or capitalised entity differs), so only
# the verifier can tell them apart.
PARAPHRASES = [
    ("How can I learn to cook quickly?", "What is the fastest way to learn cooking?"),
    ("How do I lose weight fast?", "What is the quickest way to lose weight?"),
    ("What are the best ways to save money?", "How can I save money?"),
]
DIFFERENT = [
    ("How do I become a good software engineer?", "How do I become a good doctor?"),
    ("Can a dog eat chocolate?", "Can chocolate eat a dog?"),
    ("What is the best laptop for gaming?", "What is the best phone for gaming?"),
]


@pytest.fixture(scope="module")
def verifier() -> Verifier:
    return Verifier().load()


def test_the_artifact_ships_small_with_its_provenance() -> None:
    folder = artifact_dir()
    size = sum(f.stat().st_size for f in folder.iterdir())
    assert {"model.npz", "verifier.json"} <= {f.name for f in folder.iterdir()}
    assert size <= 50 * 1024 * 1024
    meta = metadata()
    assert meta["kind"] == "alignment" and meta["seed"] == 15
    assert "semcache/data/pairs.jsonl" in meta["data"]["not_used"]
    assert meta["features"] == list(FEATURES) and meta["training"]["fit_seconds"] > 0
    held_out = meta["figures"]["qqp_test"]
    assert held_out["pairs"] >= 4000 and held_out["auc"] > held_out["cosine_auc"]
    band = meta["recommended"]
    assert 0 < band["threshold"] < 1 and band["below"] >= 0 and band["above"] > 0
    expected = (0.9 - band["below"], min(0.9 + band["above"], 0.9999))
    assert Verifier().band(0.9) == pytest.approx(expected)


def test_shipped_verifier_accepts_paraphrases_and_rejects_changed_meaning(
    verifier: Verifier,
) -> None:
    for query, candidate in PARAPHRASES:
        assert Guard().check(query, candidate) is None
        assert verifier.score(query, [candidate])[0] >= verifier.threshold, (query, candidate)
    for query, candidate in DIFFERENT:
        assert Guard().check(query, candidate) is None
        assert verifier.score(query, [candidate])[0] < verifier.threshold, (query, candidate)


def test_scores_are_probabilities_in_candidate_order(verifier: Verifier) -> None:
    query, good = PARAPHRASES[0]
    bad = DIFFERENT[0][1]
    scores = verifier.score(query, [bad, good, bad])
    assert len(scores) == 3 and all(0 <= s <= 1 for s in scores)
    assert scores[1] > scores[0] and scores[0] == pytest.approx(scores[2])
    assert verifier.score(query, []) == []


def test_a_pair_scored_again_is_served_from_the_verifiers_recent_scores() -> None:
    fresh = Verifier()
    query, candidate = PARAPHRASES[1]
    first = fresh.score(query, [candidate])
    fresh._loaded = None  # a second model run would load again; the recent score needs none
    fresh._open = None  # type: ignore[assignment,method-assign]
    assert fresh.score(query, [candidate]) == first
    with pytest.raises(TypeError):
        fresh.score(query, [candidate + " (new)"])  # a new pair does need the model


def test_a_memoised_verifier_gives_the_same_scores(verifier: Verifier) -> None:
    memo = verifier.memoised()
    pairs = [*PARAPHRASES, *DIFFERENT]
    memo.prefill(pairs)
    assert [memo.score(q, [c])[0] for q, c in pairs] == pytest.approx(
        [verifier.score(q, [c])[0] for q, c in pairs], abs=1e-6
    )


def test_bad_settings_and_a_missing_artifact_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(semcache.ConfigurationError, match="metadata"):
        Verifier(tmp_path)
    with pytest.raises(semcache.ConfigurationError, match="threshold"):
        Verifier(threshold=1.5)
    with pytest.raises(semcache.ConfigurationError, match="threads"):
        Verifier(threads=0)


# --- through the cache ------------------------------------------------------------------------------


#: The decision the verifier's tests run: the default guard plus the shipped verifier.
WITH_VERIFIER = GuardedDecision(guard=Guard(), verifier=Verifier())


@pytest.fixture
def verifier_cache(redis_url: str, namespace: str) -> Iterator[object]:
    made: list[Cache] = []

    def build(similar: dict[str, float], **config: object) -> Cache:
        cache = Cache(redis_url=redis_url, embedder=table_embedder(similar),
                      config=CacheConfig(namespace=namespace, **{"decision": WITH_VERIFIER, **config}))  # type: ignore[arg-type]  # fmt: skip
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.flush()
        cache.close()


def test_the_default_decision_is_the_guard_and_the_shipped_verifier(
    redis_url: str, namespace: str
) -> None:
    with Cache(redis_url=redis_url, embedder=table_embedder({}), namespace=namespace) as cache:
        decision = cache.decision
        assert isinstance(decision, GuardedDecision) and decision.guard == Guard()
        assert isinstance(decision.verifier, Verifier) and decision.verifier.path == artifact_dir()
        cache.delete_namespace()


def test_the_default_cache_asks_the_verifier_and_obeys_it(redis_url: str, namespace: str) -> None:
    """Bypassed (the guard alone) the default would serve this word swap; with its verifier it
    misses; a verifier told to accept everything serves it: the decision is the verifier's."""
    query, stored = (
        "Can a cat eat grapes?",
        "Can grapes eat a cat?",
    )  # its own texts: vectors are cached
    served = []
    for decision in (None, GuardedDecision(guard=Guard()),
                     GuardedDecision(guard=Guard(), verifier=Verifier(threshold=0.0))):  # fmt: skip
        config = CacheConfig(namespace=namespace, decision=decision)
        with Cache(
            redis_url=redis_url, embedder=table_embedder({query: in_band(0.9)}), config=config
        ) as cache:
            cache.store(chat(stored), answer("No."))
            result = cache.lookup(chat(query))
            served.append(result.layer)
            if decision is None:
                assert result.reason == "verifier" and "verifier" in dict(result.checks)
            cache.delete_namespace()
    assert served == [None, "semantic", "semantic"]


def in_band(cutoff: float) -> float:
    """A cosine above the cut-off and inside the shipped verifier's band."""
    v = Verifier()
    _low, high = v.band(cutoff)
    return round(min(high - 0.005, cutoff + 0.005), 4)


def test_a_candidate_the_verifier_rejects_is_a_miss_that_says_why(verifier_cache) -> None:  # type: ignore[no-untyped-def]
    query, stored = DIFFERENT[0]
    s = in_band(0.9)
    cache = verifier_cache({query: s})
    cache.store(chat(stored), answer("Study medicine."))
    # the plain threshold and the old default (the guard) would both serve this candidate
    assert s >= cache.config.threshold and Guard().check(query, stored) is None
    result = cache.lookup(chat(query))
    assert result.layer is None and result.reason == "verifier"
    names = [name for name, _ in result.checks]
    assert names == ["threshold", "guard", "verifier"]
    p, sign, accept = result.checks[-1][1].split()
    assert sign == "<" and float(p) < float(accept)


def test_a_candidate_the_verifier_accepts_is_a_hit(verifier_cache) -> None:  # type: ignore[no-untyped-def]
    query, stored = PARAPHRASES[0]
    cache = verifier_cache({query: in_band(0.9)})
    cache.store(chat(stored), answer("Practise daily."))
    result = cache.lookup(chat(query))
    assert result.layer == "semantic"
    assert result.response["choices"][0]["message"]["content"] == "Practise daily."
    verdict = dict(result.checks)["verifier"].split()
    assert verdict[1] == ">=" and float(verdict[0]) >= float(verdict[2])


def test_outside_the_band_the_verifier_is_not_asked(verifier_cache) -> None:  # type: ignore[no-untyped-def]
    query, stored = DIFFERENT[1]
    v = Verifier()
    low, _high = v.band(0.9)
    cache = verifier_cache({query: round(low - 0.05, 4)})
    cache.store(chat(stored), answer("No."))
    result = cache.lookup(chat(query))
    assert result.layer is None and "verifier" not in dict(result.checks)


def test_the_same_vector_up_to_rounding_is_not_verified(verifier_cache) -> None:  # type: ignore[no-untyped-def]
    """A band reaching 1.0 stops short of it: 0.99999 is one vector (case, punctuation), not a
    paraphrase to check."""
    query, stored = "WHAT IS LOVE", "What is love?"
    assert Verifier().band(0.9)[1] == 0.9999 and Verifier(above=0.05).band(0.9)[1] == pytest.approx(
        0.95
    )
    cache = verifier_cache({query: 0.99999})
    cache.store(chat(stored), answer("Baby don't hurt me."))
    result = cache.lookup(chat(query))
    assert result.layer == "semantic" and "verifier" not in dict(result.checks)


def test_a_failing_verifier_is_a_miss_not_an_error(verifier_cache, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    broken = tmp_path / "broken"
    shutil.copytree(artifact_dir(), broken)
    (broken / "model.npz").write_bytes(b"not an archive")
    query, stored = PARAPHRASES[0]
    decision = GuardedDecision(guard=Guard(), verifier=Verifier(broken))
    cache = verifier_cache({query: in_band(0.9)}, decision=decision)
    cache.store(chat(stored), answer("Practise daily."))
    result = cache.lookup(chat(query))
    assert result.layer is None and result.reason == "verifier"
    assert dict(result.checks)["verifier"].startswith("reject: verifier failed")


def test_the_floor_of_a_decision_is_its_lowest_band() -> None:
    v = Verifier(below=0.1, above=0.05)
    assert decision_floor(GuardedDecision(verifier=v), 0.9) == pytest.approx(0.8)
    assert decision_floor(GuardedDecision(guard=Guard()), 0.9) == 0.9
    assert decision_floor(semcache.ThresholdDecision(), 0.9) == 0.9


def test_metadata_matches_the_training_results_file() -> None:
    results = (
        Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "verifier_training.json"
    )
    shipped = metadata()
    assert json.loads(results.read_text())["recommended"] == shipped["recommended"]


def test_decide_with_the_verifier_does_no_io_and_runs_its_model_as_a_local_call() -> None:
    """The only operation the verifier's decision yields is its model run, as a local call (the
    async cache runs it off its event loop; a driver that refuses I/O runs it); once the pair's
    score is in memory it yields nothing."""
    query, stored = (
        "What is the best laptop for gaming in a tent?",
        "What is the best phone for gaming in a tent?",
    )
    entry = Entry(response={}, kind="chat", model="m")
    decision = GuardedDecision(guard=Guard(), verifier=Verifier())
    candidate = Candidate("a", in_band(0.9), entry, stored, {})
    flow = decision.decide(query, [candidate], 0.9)
    call = next(flow)
    assert isinstance(call, Call) and call.local and call.afn is None
    flow = decision.decide(query, [candidate], 0.9)
    verdict = drive(flow, refuse, throw=False)
    assert verdict.accepted is None and verdict.reason == "verifier"
    again = decision.decide(query, [candidate], 0.9)
    with pytest.raises(StopIteration) as stop:
        next(again)
    assert stop.value.value.accepted is None and stop.value.value.reason == "verifier"


async def test_the_async_cache_runs_the_verifiers_model_off_its_event_loop(
    redis_url: str, namespace: str
) -> None:
    """A verified lookup whose texts the model has not seen runs it on a worker thread: the event
    loop serves other tasks meanwhile. The same pair again is scored from memory, in the loop."""
    query, stored = f"Can a cat of {namespace} eat grapes?", f"Can grapes of {namespace} eat a cat?"
    config = CacheConfig(namespace=namespace)
    embedder = table_embedder({query: in_band(0.9)})
    async with AsyncCache(redis_url=redis_url, embedder=embedder, config=config) as cache:
        verifier = cache.decision.verifier
        original, ran_on = verifier.score, []

        def score(q: str, candidates: list[str]) -> list[float]:
            ran_on.append(threading.get_ident())
            return original(q, candidates)

        verifier.score = score
        await cache.store(chat(stored), answer("No."))
        loop_thread = threading.get_ident()
        for _ in range(2):
            result = await cache.lookup(chat(query))
            assert result.layer is None and result.reason == "verifier"
        assert len(ran_on) == 2 and ran_on[0] != loop_thread and ran_on[1] == loop_thread
        await cache.delete_namespace()


def test_the_paws_split_keeps_each_sentence_component_on_one_side(tmp_path: Path) -> None:
    """benchmarks/_paws.py: a sentence and its swaps never sit on two sides (fit / dev / test)."""
    from benchmarks import _paws, _qqp

    rows = []
    for i in range(60):  # 60 components: a source sentence, two variants, chained pairs
        base, swap, para = (
            f"Ann met Bob in town {i} .",
            f"Bob met Ann in town {i} .",
            f"In town {i} , Ann met Bob .",
        )
        rows += [f"{3 * i}\t{base}\t{swap}\t0", f"{3 * i + 1}\t{swap}\t{para}\t0", f"{3 * i + 2}\t{para}\t{base}\t1"]  # fmt: skip
    (tmp_path / _paws.FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
    split = _paws.split(tmp_path)
    sides = {name: getattr(split, name) for name in ("fit", "dev", "test")}
    assert sum(map(len, sides.values())) == 180 and all(sides.values())
    seen: dict[str, str] = {}
    for name, pairs in sides.items():
        for a, b, _ in pairs:
            for text in (a, b):
                assert seen.setdefault(_qqp.normalise(text), name) == name, text
    assert split.components == {"fit": 42, "dev": 6, "test": 12}
    assert _paws.split(tmp_path) == split  # seeded: the same split every time


def test_threads_scoring_at_once_get_the_serial_scores_and_huge_or_odd_texts_score() -> None:
    """One shared model and two shared memories (token rows, pair scores) under eight threads;
    a 50,000-character query (truncated by the tokenizer) and odd Unicode score without error."""
    from concurrent.futures import ThreadPoolExecutor

    pairs = [*PARAPHRASES, *DIFFERENT] * 4
    serial = [Verifier().score(q, [c])[0] for q, c in pairs]
    shared = Verifier()
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda p: shared.score(p[0], [p[1]])[0], pairs))
    assert together == pytest.approx(serial, abs=1e-3)  # float16 rows kept vs float32 run
    odd = [
        "learn " * 10_000,
        "¿Cómo aprendo Python? 🐍\u200b",
        "\u0301\u0301",
        "\uff30\uff39\uff34\uff28\uff2f\uff2e",
    ]  # the last: fullwidth PYTHON
    scores = shared.score("How do I learn Python?", odd)
    assert len(scores) == 4 and all(0.0 <= s <= 1.0 for s in scores)
