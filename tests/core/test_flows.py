"""The cache's flows without Redis: lookup, store, the compute lock, invalidation and the decision
stage, each driven with scripted replies (see flowscript.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from flowscript import embedder, run, vectors
from redis.exceptions import ResponseError

import semcache
from semcache.core.engine import Core
from semcache.core.ops import Call, Commands, Embed
from semcache.core.plan import Plan
from semcache.core.types import Entry
from semcache.decision.protocol import Candidate

REQUEST = {
    "model": "m",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
}
ANSWER = {"choices": [{"message": {"role": "assistant", "content": "Paris"}}]}


GEN = [None, None]  # the replies of the generations' GETs (none moved yet)


def generation_reads(plan: Plan) -> list[tuple[str, str]]:
    """The GETs of the generations a plan's entries depend on (its namespace's, its tenant's)."""
    return [("GET", plan.keys.generation()), ("GET", plan.keys.generation(plan.tenant_tag))]


def core(**config: Any) -> Core:
    c = Core(semcache.CacheConfig(namespace="ns", **config), embedder())
    c.semantic.plans = None  # the counts some searches carry: tests/core/test_hybrid.py
    return c


def stored(plan: Plan, text: str = "") -> str:
    return Entry(ANSWER, kind="chat", model="m", text=text or plan.text, created_at=1.0).to_json()


def search_reply(c: Core, plan: Plan, digest: str, distance: float) -> list[Any]:
    """An FT.SEARCH reply (RESP2) with one document of the plan's scope."""
    doc = plan.keys.doc(plan.tenant_tag, digest)
    fields = [b"dist", str(distance).encode(), b"entry", stored(plan, "capital of France?").encode(),
              b"text", b"capital of France?", b"scope", plan.scope.encode(),
              b"tenant", plan.tenant_tag.encode(), b"emb", c.embeddings.tag.encode()]  # fmt: skip
    return [1, doc.encode(), fields]


def test_an_exact_hit_takes_one_round_trip_with_both_reads() -> None:
    c = core()
    plan = c.planner.plan(REQUEST)
    result, script = run(c.lookup(plan), [stored(plan).encode(), None, None, None])
    assert result.layer == "exact" and result.response == ANSWER
    assert script.commands == [("GET", plan.exact_key), *generation_reads(plan),
                               ("GET", c.embeddings.key(plan.text))]  # fmt: skip
    assert script.round_trips == 1


def test_without_the_semantic_layer_a_miss_reads_one_key() -> None:
    c = core(semantic=False)
    plan = c.planner.plan(REQUEST)
    result, script = run(c.lookup(plan), [None, None, None])
    assert result.layer is None and result.reason == "semantic-off" and result.tried == ("exact",)
    assert script.commands == [("GET", plan.exact_key), *generation_reads(plan)]


def test_a_semantic_hit_embeds_and_caches_the_vector_with_the_search() -> None:
    c = core(threshold=0.9, decision=semcache.ThresholdDecision())
    plan = c.planner.plan(REQUEST)
    c.semantic._ready.add("ns")  # the index was checked before
    result, script = run(
        c.lookup(plan),
        [None, None, None, None],  # exact, generations and embedding-cache GETs: all missing
        vectors([1.0, 0.0, 0.0, 0.0]),  # the embedder
        [True, search_reply(c, plan, "a" * 64, 0.04)],  # SET of the vector, then FT.SEARCH
    )
    assert result.layer == "semantic" and result.matched_key == "a" * 64
    assert result.similarity == pytest.approx(0.96) and result.embedded
    assert isinstance(script.ops[1], Embed) and script.ops[1].texts == (plan.text,)
    set_vector, search = script.ops[2].commands
    assert set_vector[:2] == ("SET", c.embeddings.key(plan.text))
    assert search[0] == "FT.SEARCH" and plan.scope in search[2]


def test_a_lookup_in_a_namespace_without_an_index_creates_none_and_caches_the_vector() -> None:
    c = core(threshold=0.9, decision=semcache.ThresholdDecision())
    plan = c.planner.plan(REQUEST)
    result, script = run(
        c.lookup(plan),
        [None, None, None, None],
        vectors([1.0, 0.0, 0.0, 0.0]),
        [ResponseError("Unknown index name")],  # FT.INFO: no index, nothing was stored here
        [True],  # the SET of the vector, without a search
    )
    assert result.layer is None and result.reason == "no-index" and result.embedded
    (set_vector,) = script.ops[3].commands
    assert set_vector[:2] == ("SET", c.embeddings.key(plan.text))
    sent = [command[0] for op in script.ops if hasattr(op, "commands") for command in op.commands]
    assert "FT.CREATE" not in sent and "FT.SEARCH" not in sent
    assert not c.semantic.ready(plan.keys)  # checked again next time: a store may make it


def test_a_candidate_below_the_threshold_is_a_miss_with_its_similarity() -> None:
    c = core(threshold=0.9, decision=semcache.ThresholdDecision())
    plan = c.planner.plan(REQUEST)
    c.embeddings.memory.put(plan.text, np.asarray([1, 0, 0, 0], dtype=np.float32))
    c.semantic._ready.add("ns")  # the index was checked before
    result, script = run(c.lookup(plan), [None] * 3, [search_reply(c, plan, "b" * 64, 0.3)])
    assert result.layer is None and result.reason == "below-threshold"
    assert result.best_similarity == pytest.approx(0.7) and result.nearest_key == "b" * 64
    assert script.round_trips == 2  # the vector was in memory: no embedding read, no write


def test_a_failing_embedder_is_thrown_into_the_flow_which_answers_a_miss() -> None:
    c = core()
    plan = c.planner.plan(REQUEST)
    result, _ = run(c.lookup(plan), [None] * 4, RuntimeError("model crashed"))
    assert result.layer is None and result.reason == "embedding-failed"


def test_the_compute_lock_rides_first_in_the_lookups_round_trip() -> None:
    c = core(semantic=False)
    plan = c.planner.plan(REQUEST)
    (result, locked), script = run(c.lookup_or_lock(plan, ("tok", 30_000)), [b"OK", *[None] * 3])
    assert locked and result.layer is None
    assert script.commands == [
        ("SET", plan.lock_key, "tok", "NX", "PX", 30_000),
        ("GET", plan.exact_key),
        *generation_reads(plan),
    ]
    (_, locked), _ = run(c.lookup_or_lock(plan, ("tok", 30_000)), [None] * 4)
    assert not locked  # another caller holds it


def test_a_store_writes_entry_document_and_tags_in_one_round_trip_and_can_release_the_lock() -> (
    None
):
    c = core(ttl=60, ttl_jitter=0)
    plan = c.planner.plan(REQUEST)
    c.embeddings.memory.put(plan.text, np.asarray([1, 0, 0, 0], dtype=np.float32))
    c.semantic._ready.add("ns")
    ok, script = run(c.store(plan, ANSWER, tags=("faq",), unlock="tok"), lambda op: [1] * 11)
    assert ok and script.round_trips == 1
    names = [command[0] for command in script.commands]
    # no lookup of this process saw the generations: they are read before and behind the writes
    assert names == ["GET", "GET", "SET", "DEL", "HSET", "PEXPIRE", "ZADD", "ZREMRANGEBYSCORE",
                     "GET", "GET", "EVAL"]  # fmt: skip
    assert script.commands[2][:2] == ("SET", plan.exact_key) and script.commands[2][-1] == 60_000
    assert script.commands[-1][-2:] == (plan.lock_key, "tok")


def test_a_failed_write_in_the_store_pipeline_is_reported() -> None:
    c = core(semantic=False)
    plan = c.planner.plan(REQUEST)
    ok, _ = run(c.store(plan, ANSWER), [None, None, ResponseError("OOM command not allowed"), *GEN])
    assert ok is False


def test_the_l1_answers_without_any_operation_after_an_exact_hit() -> None:
    c = core(l1_size=8, semantic=False)
    plan = c.planner.plan(REQUEST)
    first, _ = run(c.lookup(plan), [stored(plan).encode(), None, None])
    again, script = run(c.lookup(plan))
    assert first.layer == "exact" and again.layer == "l1" and script.ops == []


def test_invalidating_a_key_unlinks_both_layers_and_announces_it() -> None:
    c = core()
    plan = c.planner.plan(REQUEST)
    removed, script = run(c.invalidation.invalidate(keys=[plan.digest]), [True], [1, 1], [0])
    assert removed == 2
    assert script.commands[0][:2] == ("SET", plan.keys.generation(plan.tenant_tag))  # moved first
    assert script.commands[1:3] == [("UNLINK", plan.exact_key), ("UNLINK", plan.doc_key)]
    assert script.commands[3][:2] == ("PUBLISH", "semcache:l1:ns")


def test_a_judge_is_asked_through_a_call_and_its_failure_is_a_rejection() -> None:
    decision = semcache.GuardedDecision(
        guard=None, opinion=semcache.SecondOpinion(judge=lambda q, t: True, below=0.1, above=0.1)
    )
    entry = Entry(ANSWER, kind="chat", model="m")
    candidate = Candidate("d" * 64, 0.85, entry, "capital of France", {})
    verdict, script = run(decision.decide("France capital", [candidate], 0.8), True)
    assert verdict.accepted is candidate and isinstance(script.ops[0], Call)
    verdict, _ = run(decision.decide("France capital", [candidate], 0.8), TimeoutError("judge"))
    assert verdict.accepted is None and verdict.reason == "opinion"


def test_bypassed_requests_do_no_io() -> None:
    c = core(stochastic="bypass")
    plan = c.planner.plan({**REQUEST, "temperature": 1.0})
    result, script = run(c.lookup(plan))
    stored_ok, more = run(c.store(plan, ANSWER))
    assert result.reason == "stochastic" and stored_ok is False
    assert script.ops == [] and more.ops == []


def test_every_round_trip_is_one_commands_operation() -> None:
    c = core(semantic=False)
    plan = c.planner.plan(REQUEST)
    _, script = run(c.lookup(plan), [None, None, None])
    assert all(isinstance(op, Commands) for op in script.ops)
