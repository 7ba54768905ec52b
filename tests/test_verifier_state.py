"""The verifier's token state stored with an entry: a process that did not store the entry scores it
without running the model on it, and a missing, corrupt or unreadable state only costs that run."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import redis

import semcache
from semcache import AsyncCache, Cache, CacheConfig, Verifier
from semcache.core.ops import Call, Commands, drive
from semcache.core.types import Entry
from semcache.decision import decide
from semcache.decision.alignment import PACKED, TokenState, pack, unpack
from semcache.decision.decide import HAS_TOKENS, TOKENS, Candidate, GuardedDecision
from semcache.embedding.onnx_runtime import OnnxModel
from tests.conftest import answer, chat

# with all-MiniLM-L6-v2 both pairs fall inside the shipped verifier's band at the default cut-off
PARAPHRASE = ("How do I lose weight fast?", "How can I lose weight quickly?")
SWAP = ("Can a dog eat chocolate?", "Can chocolate eat a dog?")


def model_runs(verifier: Verifier, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts the verifier's (shared) model runs from now on."""
    model = verifier._load().model._model
    ran: list[str] = []
    original = model.tokens

    def tokens(texts: list[str], **kwargs: Any) -> Any:
        ran.extend(texts)
        return original(texts, **kwargs)

    monkeypatch.setattr(model, "tokens", tokens)
    return ran


def document_key(cache: Cache) -> str:
    (key,) = [k.decode() for k in cache.client.scan_iter(f"*:s:{{{cache.namespace}}}:*")]
    return key


@pytest.fixture
def stored(redis_url: str, namespace: str, embedder: semcache.Embedder) -> Iterator[Callable[..., Cache]]:  # fmt: skip
    """A cache that stored ``text`` with the default embedder (the model ran on it), then a new
    process's view: the model's memory of texts is dropped and the caller gets a new cache."""
    made: list[Cache] = []

    def build(text: str, reply: str = "Eat less.") -> Cache:
        writer = Cache(redis_url=redis_url, embedder=embedder, namespace=namespace)
        made.append(writer)
        writer.store(chat(text), answer(reply))
        OnnxModel.forget_shared()
        reader = Cache(redis_url=redis_url, embedder=embedder, namespace=namespace)
        made.append(reader)
        return reader

    yield build
    for cache in made:
        cache.flush()
        cache.close()
    OnnxModel.forget_shared()


@pytest.mark.parametrize(("pair", "served"), [(PARAPHRASE, True), (SWAP, False)])
def test_another_process_scores_a_stored_entry_without_running_the_model_on_it(
    stored: Callable[..., Cache], monkeypatch: pytest.MonkeyPatch, pair: tuple[str, str], served: bool
) -> None:  # fmt: skip
    query, text = pair
    cache = stored(text)
    blob = cache.client.hget(document_key(cache), TOKENS)
    assert blob is not None and blob.startswith(PACKED)
    ran = model_runs(cache.decision.verifier, monkeypatch)
    result = cache.lookup(chat(query))
    assert "verifier" in dict(result.checks)
    assert (result.layer == "semantic") is served
    assert ran == [query]  # only the query's own run (its embedding); never the candidate's
    # the score from the stored state is the model's own, to the int8 state's rounding
    p = float(dict(result.checks)["verifier"].split()[0])
    OnnxModel.forget_shared()
    assert p == pytest.approx(Verifier().score(query, [text])[0], abs=0.03)


async def test_the_async_cache_reads_the_stored_state_too(
    stored: Callable[..., Cache], redis_url: str, embedder: semcache.Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    query, text = PARAPHRASE
    namespace = stored(text).namespace
    async with AsyncCache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        ran = model_runs(cache.decision.verifier, monkeypatch)
        result = await cache.lookup(chat(query))
        assert result.layer == "semantic" and ran == [query]


def test_a_store_that_ran_no_model_stores_no_state(
    redis_url: str, namespace: str, embedder: semcache.Embedder
) -> None:
    """A vector the caller gives (the model never ran on the text) stores no state: no model run
    at store time for a lookup that may never come."""
    OnnxModel.forget_shared()
    vector = embedder.embed(["How do I bake bread at home?"])[0]
    OnnxModel.forget_shared()
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        cache.store(chat("How do I bake bread at home?"), answer("Knead."), vector=vector)
        assert cache.client.hget(document_key(cache), TOKENS) is None
        cache.flush()


def test_a_bulk_load_of_a_warm_batch_stores_each_entrys_state(
    redis_url: str, namespace: str, embedder: semcache.Embedder
) -> None:
    texts = [f"How do I care for a {pet} in winter?" for pet in ("cat", "dog", "hamster", "parrot",
             "rabbit", "turtle", "goldfish", "horse", "ferret", "canary", "lizard", "pony")]  # fmt: skip
    OnnxModel.forget_shared()
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        assert cache.store_many([(chat(t), answer("Keep it warm.")) for t in texts]) == len(texts)
        states = [cache.client.hget(cache.plan(chat(t)).doc_key, TOKENS) for t in texts]
        cache.flush()
    assert all(state is not None and state.startswith(PACKED) for state in states)


def test_a_bulk_load_past_the_models_memory_stores_every_entrys_state(
    redis_url: str, namespace: str, embedder: semcache.Embedder
) -> None:
    """More texts than the model remembers (512) in one ``store_many``: each is embedded and its
    document written while its token rows are still in memory, so every entry holds its state, as
    a ``store`` of it would (before, the first ones had none)."""
    texts = [f"How do I renew licence {i} of the {kind} plan?" for i in range(300)
             for kind in ("basic", "team")]  # fmt: skip
    OnnxModel.forget_shared()
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        assert cache.store_many([(chat(t), answer("Renew it.")) for t in texts]) == len(texts)
        pipe = cache.client.pipeline(transaction=False)
        for t in texts:
            pipe.hmget(cache.plan(chat(t)).doc_key, [TOKENS, HAS_TOKENS])
        rows = pipe.execute()
        cache.flush()
    assert len(rows) == 600 > 512
    assert all(
        state is not None and state.startswith(PACKED) and mark == b"1" for state, mark in rows
    )


def test_state_tokens_bounds_the_texts_whose_state_an_entry_stores(
    redis_url: str, namespace: str, embedder: semcache.Embedder
) -> None:
    short, long = (
        "How do I bake bread?",
        " ".join(f"word{i}" for i in range(45)) + "?",
    )  # ~90 tokens
    stored = {}
    for most in (0, 64, 400):
        verifier = Verifier(state_tokens=most)
        config = CacheConfig(namespace=namespace, decision=GuardedDecision(verifier=verifier))
        with Cache(redis_url=redis_url, embedder=embedder, config=config) as cache:
            for text in (short, long):
                cache.store(chat(text), answer("Knead."))
                stored[most, text] = cache.client.hget(cache.plan(chat(text)).doc_key, TOKENS)
            cache.flush()
    assert stored[0, short] is None and stored[0, long] is None
    assert stored[64, short] is not None and stored[64, long] is None  # past 64 tokens: none
    assert stored[400, long] is not None and len(stored[400, long]) > 64 * 390
    with pytest.raises(semcache.ConfigurationError):
        Verifier(state_tokens=-1)


def corruptions(blob: bytes) -> dict[str, bytes]:
    n, dim = struct.unpack_from("<HH", blob, 4)
    ids_at = 12 + dim
    return {
        "garbage": b"\x00\xff" * 40,
        "empty": b"",
        "truncated": blob[:-1],
        "one byte more": blob + b"\x00",
        "another tag": b"xxxx" + blob[4:],
        "another dimension": blob[:6] + struct.pack("<H", dim // 2) + blob[8:],
        "a token outside the vocabulary": blob[:ids_at] + b"\xff\xff" + blob[ids_at + 2 :],
        "a zero scale": blob[: ids_at + 2 * n] + b"\0\0\0\0" + blob[ids_at + 2 * n + 4 :],
        "a NaN sentence scale": blob[:8] + struct.pack("<f", float("nan")) + blob[12:],
        "text": b"not a state at all",
    }


def test_a_corrupt_stored_state_costs_a_model_run_not_a_wrong_answer(
    stored: Callable[..., Cache], monkeypatch: pytest.MonkeyPatch, redis_url: str,
    embedder: semcache.Embedder,
) -> None:  # fmt: skip
    query, text = PARAPHRASE
    cache = stored(text, "Move more.")
    key = document_key(cache)
    blob = cache.client.hget(key, TOKENS)
    assert blob is not None
    ran = model_runs(cache.decision.verifier, monkeypatch)
    for name, bad in corruptions(blob).items():
        cache.client.hset(key, TOKENS, bad)
        with Cache(redis_url=redis_url, embedder=embedder, namespace=cache.namespace) as fresh:
            ran.clear()
            OnnxModel.forget_shared()
            result = fresh.lookup(chat(query))
            assert result.layer == "semantic", name  # the model's own verdict: served
            assert result.response == answer("Move more."), name
            assert sorted(ran) == sorted([query, text]), name  # the candidate ran: no state read
            assert fresh.available, name


def test_a_corrupt_state_is_replaced_by_the_first_lookup_that_runs_the_model(
    stored: Callable[..., Cache], monkeypatch: pytest.MonkeyPatch, redis_url: str,
    embedder: semcache.Embedder,
) -> None:  # fmt: skip
    """A state that does not read costs one process the model run; that run's state replaces it,
    so the next process reads it again (before, every lookup paid the run for good)."""
    query, text = PARAPHRASE
    cache = stored(text, "Move more.")
    key = document_key(cache)
    good = cache.client.hget(key, TOKENS)
    cache.client.hset(key, TOKENS, b"\x00\xff" * 40)
    ran = model_runs(cache.decision.verifier, monkeypatch)
    for expected in ([query, text], [query]):
        OnnxModel.forget_shared()
        ran.clear()
        with Cache(redis_url=redis_url, embedder=embedder, namespace=cache.namespace) as fresh:
            assert fresh.lookup(chat(query)).response == answer("Move more.")
        assert sorted(ran) == sorted(expected)
        blob = cache.client.hget(key, TOKENS)
        assert blob is not None and blob.startswith(PACKED) and len(blob) == len(good)


def test_a_failed_read_of_the_state_runs_the_model(redis_url: str, namespace: str) -> None:
    """The read answered by an error (a key of another type) or not at all (the connection lost):
    the verifier runs the model and decides as without a stored state."""
    query, text = PARAPHRASE
    client = redis.Redis.from_url(redis_url)
    key = f"semcache-test:{namespace}:a-string"
    client.set(key, "not a hash")
    marked = {HAS_TOKENS: b"1"}  # its search row says it has a state
    candidate = Candidate("d", 0.92, Entry(response={}, kind="chat", model="m"), text, marked,
                          key=key)  # fmt: skip
    sent: list[tuple[Any, ...]] = []

    def real(op: Any) -> Any:
        if isinstance(op, Commands):
            sent.extend(op.commands)
            pipe = client.pipeline(transaction=False)
            for command in op.commands:
                pipe.execute_command(*command)
            return pipe.execute(raise_on_error=False)
        assert isinstance(op, Call)
        return op.fn(*op.args)

    def lost(op: Any) -> Any:
        if isinstance(op, Commands):
            raise redis.ConnectionError("connection lost")
        return real(op)

    try:
        for driver in (real, lost):
            OnnxModel.forget_shared()
            decision = GuardedDecision(verifier=Verifier())  # no score of the pair in memory
            verdict = drive(decision.decide(query, [candidate], 0.9), driver)
            assert verdict.accepted is candidate and verdict.reason == "accepted"
        assert sent == [("HGET", key, TOKENS)]
    finally:
        client.delete(key)
        client.close()
        OnnxModel.forget_shared()


def test_an_entry_without_a_state_is_never_read_and_a_mark_without_one_costs_only_the_read(
    redis_url: str, namespace: str, embedder: semcache.Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search row says whether the entry holds a state: an entry stored with the caller's
    vector (no model run, no state) costs a lookup elsewhere no HGET; a state whose mark is gone
    is not read; a mark whose state is gone costs the read, and the model runs."""
    query, text = PARAPHRASE
    OnnxModel.forget_shared()
    vector = embedder.embed([text])[0]
    OnnxModel.forget_shared()  # the model never ran on the text in the storing process
    sent: list[str] = []
    import semcache.redis.executor as executor

    original = executor._bulk

    def spy(client: Any, batch: tuple[Any, ...], lane: Any) -> list[Any]:
        sent.extend(str(command[0]) for command in batch)
        return original(client, batch, lane)

    monkeypatch.setattr(executor, "_bulk", spy)
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as writer:
        writer.store(chat(text), answer("Eat less."), vector=vector)
        key = document_key(writer)
        assert (
            writer.client.hget(key, TOKENS) is None and writer.client.hget(key, HAS_TOKENS) is None
        )
        for state, mark, reads in (
            (None, None, False),
            (b"state", None, False),
            (None, b"1", True),
        ):
            for field, value in ((TOKENS, state), (HAS_TOKENS, mark)):
                if value is None:
                    writer.client.hdel(key, field)
                else:
                    writer.client.hset(key, field, value)
            OnnxModel.forget_shared()
            ran = model_runs(Verifier(), monkeypatch)
            with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as reader:
                sent.clear()
                result = reader.lookup(chat(query))
            assert result.layer == "semantic" and "verifier" in dict(result.checks)
            assert ("HGET" in sent) is reads, (state, mark)
            assert sorted(ran) == sorted([query, text]), (state, mark)  # the model ran on both
        writer.flush()


def stateless_entry(redis_url: str, namespace: str, embedder: semcache.Embedder,
                    text: str) -> str:  # fmt: skip
    """An entry stored with the caller's vector (no model run, no state), a TTL on it; its
    document's key. The model's memory of texts is dropped, as in another process."""
    OnnxModel.forget_shared()
    vector = embedder.embed([text])[0]
    OnnxModel.forget_shared()
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace, ttl=600) as writer:
        writer.store(chat(text), answer("Eat less."), vector=vector)
        key = document_key(writer)
    client = redis.Redis.from_url(redis_url)
    assert client.hget(key, TOKENS) is None
    client.close()
    return key


def test_the_first_lookup_that_runs_the_model_on_a_stateless_entry_stores_its_state(
    redis_url: str, namespace: str, embedder: semcache.Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The verifier ran the model on a candidate whose document has no state: the state it made
    goes to the document (with a later round trip, the TTL kept), so the next process reads it."""
    query, text = PARAPHRASE
    key = stateless_entry(redis_url, namespace, embedder, text)
    client = redis.Redis.from_url(redis_url)
    ran = model_runs(Verifier(), monkeypatch)
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as first:
        assert first.lookup(chat(query)).layer == "semantic"
        assert sorted(ran) == sorted([query, text])
    blob, mark = client.hmget(key, [TOKENS, HAS_TOKENS])
    assert blob is not None and blob.startswith(PACKED) and mark == b"1"
    assert 0 < client.pttl(key) <= 600_000
    OnnxModel.forget_shared()
    ran = model_runs(Verifier(), monkeypatch)
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as second:
        result = second.lookup(chat(query))
        assert result.layer == "semantic" and result.response == answer("Eat less.")
        assert ran == [query]  # the candidate's state came from Redis
        second.flush()
    client.close()


async def test_the_async_cache_stores_a_learned_state_too(
    redis_url: str, namespace: str, embedder: semcache.Embedder
) -> None:
    query, text = PARAPHRASE
    key = stateless_entry(redis_url, namespace, embedder, text)
    OnnxModel.forget_shared()
    async with AsyncCache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        assert (await cache.lookup(chat(query))).layer == "semantic"
        await cache.lookup(chat("What is the capital of Peru?"))  # the next round trip
        blob, mark = await cache.client.hmget(key, [TOKENS, HAS_TOKENS])
        assert blob is not None and blob.startswith(PACKED) and mark == b"1"
        await cache.flush()


@pytest.mark.parametrize("case", ["removed meanwhile", "read-only cache"])
def test_a_learned_state_never_makes_a_document_again_nor_writes_from_a_read_only_cache(
    redis_url: str, namespace: str, embedder: semcache.Embedder, case: str
) -> None:
    """The state's write waits for a later round trip: a document invalidated meanwhile is not
    made again by it (no key without a vector, no TTL); a read-only cache never writes it."""
    query, text = PARAPHRASE
    key = stateless_entry(redis_url, namespace, embedder, text)
    client = redis.Redis.from_url(redis_url)
    config = CacheConfig(namespace=namespace, read_only=case == "read-only cache")
    OnnxModel.forget_shared()
    with Cache(redis_url=redis_url, embedder=embedder, config=config) as reader:
        assert reader.lookup(chat(query)).layer == "semantic"
        if case == "removed meanwhile":
            assert client.delete(key) == 1
        reader.lookup(chat("What is the capital of Peru?"))  # the next round trip
    if case == "removed meanwhile":
        assert client.exists(key) == 0
    else:
        assert client.exists(key) == 1 and client.hget(key, TOKENS) is None
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        cache.flush()
    client.close()


def test_the_stored_form_keeps_ids_and_vectors_and_refuses_what_is_not_one() -> None:
    rng = np.random.default_rng(3)
    idf = rng.random(30522).astype(np.float32)
    for n in (0, 1, 17):
        tokens = rng.normal(size=(n, 384)).astype(np.float32)
        tokens /= np.maximum(np.linalg.norm(tokens, axis=1, keepdims=True), 1e-9)
        sentence = rng.normal(size=384).astype(np.float32)
        sentence /= np.linalg.norm(sentence)
        ids = tuple(int(i) for i in rng.integers(1000, 30000, size=n))
        state = TokenState(sentence, tokens, idf[list(ids)], ids)
        back = unpack(pack(state), idf, 384)
        assert back is not None and back.ids == ids and back.tokens.shape == (n, 384)
        assert float(back.sentence @ sentence) > 0.9999
        if n:
            assert float(np.min(np.sum(back.tokens * tokens, axis=1))) > 0.9999
            assert np.array_equal(back.weights, idf[list(ids)])
        assert unpack(pack(state), idf, 768) is None  # another model's dimension
        if n:
            for name, bad in corruptions(pack(state)).items():
                assert unpack(bad, idf, 384) is None, name


def test_on_a_cluster_a_state_is_written_back_and_read_by_the_next_process(
    cluster_url: str, namespace: str, embedder: semcache.Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write-back and the read go to the node that owns the document (an EVAL and an HGET of
    its key), on a 3-master Redis Cluster."""
    query, text = PARAPHRASE
    OnnxModel.forget_shared()
    vector = embedder.embed([text])[0]
    OnnxModel.forget_shared()
    with Cache(redis_url=cluster_url, embedder=embedder, namespace=namespace) as writer:
        writer.store(chat(text), answer("Eat less."), vector=vector)
        key = writer.plan(chat(text)).doc_key
        assert writer.client.hget(key, TOKENS) is None
    with Cache(redis_url=cluster_url, embedder=embedder, namespace=namespace) as first:
        assert first.lookup(chat(query)).layer == "semantic"
    OnnxModel.forget_shared()
    ran = model_runs(Verifier(), monkeypatch)
    with Cache(redis_url=cluster_url, embedder=embedder, namespace=namespace) as second:
        assert second.client.hget(key, HAS_TOKENS) == b"1"
        result = second.lookup(chat(query))
        assert result.layer == "semantic" and ran == [query]
        second.flush()


def test_a_learned_state_whose_write_was_lost_is_offered_again_after_a_while(
    redis_url: str, namespace: str, embedder: semcache.Embedder
) -> None:
    """The write-back rides with the next round trip, its reply ignored; when Redis refuses it
    (here: no replica to write to, which refuses writes and serves reads), the document still says
    it has no state, and this process offers it again once :data:`OFFER_AGAIN_S` has passed (not
    at once: one offer per while)."""
    query, text = PARAPHRASE
    key = stateless_entry(redis_url, namespace, embedder, text)
    admin = redis.Redis.from_url(redis_url)
    OnnxModel.forget_shared()
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as reader:
        decision = reader._core.decision
        now = [1000.0]
        decision.clock = lambda: now[0]
        assert reader.lookup(chat(query)).layer == "semantic"  # the state is offered
        admin.config_set("min-replicas-to-write", 1)  # writes refused, reads served
        try:
            assert reader.lookup(chat("What is the capital of Peru?")).layer is None
        finally:
            admin.config_set("min-replicas-to-write", 0)
        assert admin.hget(key, TOKENS) is None  # the write went, and was refused
        assert reader.lookup(chat(query)).layer == "semantic"  # offered a moment ago: not again
        reader.lookup(chat("What is the capital of Chile?"))
        assert admin.hget(key, TOKENS) is None
        now[0] += decide.OFFER_AGAIN_S + 1
        assert reader.lookup(chat(query)).layer == "semantic"  # offered again
        reader.lookup(chat("What is the capital of Chile?"))
        blob, mark = admin.hmget(key, [TOKENS, HAS_TOKENS])
        assert blob is not None and blob.startswith(PACKED) and mark == b"1"
        reader.flush()
    admin.close()
