"""The write side: a store is one round trip, a caller's own vector is used as given (never embedded
again) and a bad one is refused as bad input, and store_many takes vectors too."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pytest
from redis.exceptions import ResponseError

import semcache
from semcache import InvalidRequestError
from tests.conftest import answer, chat, hash_embedder
from tests.openai.test_wrapper_round_trips import Counted

DIM = 16


class CountingEmbedder(semcache.CallableEmbedder):
    """The hash embedder, recording every text it is asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        inner = hash_embedder(DIM)
        super().__init__(self._embed, model_id="test-hash", dimension=DIM)
        self._inner = inner

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        self.texts += texts
        return self._inner.embed(list(texts))


@pytest.fixture
def embedder_calls() -> CountingEmbedder:
    return CountingEmbedder()


@pytest.fixture
def wcache(
    redis_url: str, namespace: str, embedder_calls: CountingEmbedder
) -> Iterator[semcache.Cache]:
    with semcache.Cache(redis_url=redis_url, embedder=embedder_calls, namespace=namespace) as c:
        c.store(chat("warm the index up"), answer("warm"))  # the index check: once per process
        yield c
        c.flush()


@pytest.fixture
def counted(wcache: semcache.Cache) -> Iterator[Counted]:
    counter = Counted(wcache._executor)
    yield counter
    wcache._executor.commands = counter.original


def stored_vector(cache: semcache.Cache, request: dict[str, Any]) -> np.ndarray:
    plan = cache.plan(request)
    raw = cache.client.hget(plan.doc_key, "vec")
    assert raw is not None, "no semantic document"
    return np.frombuffer(raw, dtype=np.float32)


def test_a_store_is_one_round_trip(wcache: semcache.Cache, counted: Counted) -> None:
    assert wcache.store(chat("a new question"), answer("a"), tags=("faq",))
    assert counted.batches == [
        # generations before; the fresh vector, the entry, its document, its tag; generations after
        ["GET", "GET", "SET", "SET", "DEL", "HSET", "PEXPIRE", "ZADD", "ZREMRANGEBYSCORE",
         "GET", "GET"],
    ]  # fmt: skip


def test_store_with_a_vector_uses_it_and_never_embeds(
    wcache: semcache.Cache, counted: Counted, embedder_calls: CountingEmbedder
) -> None:
    embedder_calls.texts.clear()
    vector = np.arange(1, DIM + 1, dtype=np.float64)
    assert wcache.store(chat("held vector"), answer("b"), vector=vector.tolist())
    assert embedder_calls.texts == []
    # one round trip, and no embedding-cache write: the caller's vector is not the embedder's
    assert counted.batches == [["GET", "GET", "SET", "DEL", "HSET", "PEXPIRE", "GET", "GET"]]
    np.testing.assert_allclose(
        stored_vector(wcache, chat("held vector")), vector / np.linalg.norm(vector), rtol=1e-6
    )
    assert wcache.lookup(chat("held vector")).layer == "exact"


@pytest.mark.parametrize(
    ("vector", "why"),
    [
        ([1.0] * (DIM - 1), "values"),
        ([[1.0] * DIM], "values"),
        ([float("nan")] * DIM, "finite"),
        ([float("inf")] + [1.0] * (DIM - 1), "finite"),
        ([1e39] * DIM, "finite"),  # beyond float32
        ([0.0] * DIM, "zeros"),
        (["x"] * DIM, "real numbers"),
        ([1j] * DIM, "real numbers"),
        ("not a vector", "real numbers"),
    ],
)
def test_a_bad_vector_is_bad_input_not_an_outage(
    wcache: semcache.Cache, counted: Counted, vector: Any, why: str
) -> None:
    for _ in range(6):  # more than the breaker's failure count
        with pytest.raises(InvalidRequestError, match=why):
            wcache.store(chat("bad vector"), answer("c"), vector=vector)
    assert counted.batches == []  # refused before any I/O
    assert wcache.available
    assert wcache.lookup(chat("bad vector")).hit is False


def test_store_many_embeds_only_the_pairs_without_a_vector(
    wcache: semcache.Cache, embedder_calls: CountingEmbedder, counted: Counted
) -> None:
    embedder_calls.texts.clear()
    held = np.ones(DIM)
    pairs = [(chat(f"bulk {i}"), answer(f"a{i}")) for i in range(3)]
    assert wcache.store_many(pairs, vectors=[held, None, held]) == 3
    assert embedder_calls.texts == ["bulk 1"]
    np.testing.assert_allclose(stored_vector(wcache, chat("bulk 0")), held / np.sqrt(DIM))
    for i in range(3):
        assert wcache.lookup(chat(f"bulk {i}")).layer == "exact"


def test_store_many_with_every_vector_is_one_round_trip(
    wcache: semcache.Cache, embedder_calls: CountingEmbedder, counted: Counted
) -> None:
    embedder_calls.texts.clear()
    rows = np.random.default_rng(1).standard_normal((4, DIM))
    pairs = [(chat(f"given {i}"), answer(f"g{i}")) for i in range(4)]
    assert wcache.store_many(pairs, vectors=rows) == 4  # a 2-D array: one row per pair
    assert embedder_calls.texts == []
    assert len(counted.batches) == 1
    assert counted.batches[0].count("HSET") == 4
    for i in range(4):
        got = stored_vector(wcache, chat(f"given {i}"))
        np.testing.assert_allclose(got, rows[i] / np.linalg.norm(rows[i]), rtol=1e-5)


@pytest.mark.parametrize(
    "vectors", [[np.ones(DIM)], [np.ones(DIM), np.ones(DIM - 1)], [np.ones(DIM), [np.nan] * DIM]]
)
def test_store_many_refuses_bad_vectors_before_any_write(
    wcache: semcache.Cache, counted: Counted, vectors: list[Any]
) -> None:
    pairs = [(chat(f"refused {i}"), answer("r")) for i in range(2)]
    with pytest.raises(InvalidRequestError, match="vector"):
        wcache.store_many(pairs, vectors=vectors)
    assert counted.batches == []
    assert wcache.available


def test_a_big_batch_reads_back_as_a_pipeline_would(wcache: semcache.Cache, namespace: str) -> None:
    keys = [f"{namespace}:bulk:{i}" for i in range(40)]
    batch = (
        *(("SET", key, "v") for key in keys),
        ("HSET", keys[0], "f", "v"),  # a string key: WRONGTYPE, in place
        ("GET", keys[1]),
        ("DEL", keys[2]),
        ("PEXPIRE", keys[3], 60_000),
        ("EXISTS", keys[2]),
    )
    pipe = wcache.client.pipeline(transaction=False)
    for command in batch:
        pipe.execute_command(*command)
    expected = pipe.execute(raise_on_error=False)
    got = wcache._executor.commands(batch)
    assert [type(r) for r in got] == [type(r) for r in expected]
    assert [r for r in got if not isinstance(r, Exception)] == [
        r for r in expected if not isinstance(r, Exception)
    ]
    assert isinstance(got[len(keys)], ResponseError)
    assert wcache.client.ping()  # the connection was left in step


def test_a_store_without_ttl_replacing_one_with_ttl_never_expires(wcache: semcache.Cache) -> None:
    request = chat("expiry replaced")
    assert wcache.store(request, answer("v1"), ttl=60)
    plan = wcache.plan(request)
    assert wcache.client.pttl(plan.doc_key) > 0
    assert wcache.store(request, answer("v2"), ttl=None)
    assert wcache.client.pttl(plan.doc_key) == -1
    assert wcache.client.pttl(plan.exact_key) == -1
    assert wcache.lookup(request).response == answer("v2")


def test_async_store_many_of_a_big_batch(redis_url: str, namespace: str) -> None:
    import asyncio

    async def run() -> list[str | None]:
        async with semcache.AsyncCache(
            redis_url=redis_url, embedder=hash_embedder(DIM), namespace=namespace
        ) as cache:
            pairs = [(chat(f"async bulk {i}"), answer(f"b{i}")) for i in range(40)]
            assert await cache.store_many(pairs) == 40
            found = [await cache.lookup(chat(f"async bulk {i}")) for i in (0, 39)]
            await cache.flush()
            return [r.layer for r in found]

    assert asyncio.run(run()) == ["exact", "exact"]


def test_a_bulk_load_whose_embedder_fails_midway_stores_nothing(
    redis_url: str, namespace: str
) -> None:
    """``store_many`` embeds 256 entries at a time: the embedder failing on the second chunk,
    after the first was embedded, leaves no entry of the batch in any layer (none in the exact
    layer only, none of the first chunk) and reports 0."""
    calls: list[int] = []
    failing = [True]
    inner = hash_embedder(DIM)

    def flaky(texts: Sequence[str]) -> np.ndarray:
        calls.append(len(texts))
        if failing[0] and len(calls) == 2:
            raise RuntimeError("the embedding service went away")
        return inner.embed(list(texts))

    embedder = semcache.CallableEmbedder(flaky, model_id="test-hash", dimension=DIM)
    pairs = [(chat(f"bulk question {i}"), answer(f"a{i}")) for i in range(600)]
    with semcache.Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        assert cache.store_many(pairs) == 0
        assert calls[:2] == [256, 256]
        keys = [k for k in cache.client.scan_iter(f"*{namespace}*") if b":x:" in k or b":s:" in k]
        assert keys == []
        calls.clear()
        failing[0] = False
        assert cache.available  # an embedder's failure is not Redis failing
        assert cache.store_many(pairs) == 600  # the same batch again, the embedder back
        assert calls == [256, 88]  # the first chunk's vectors: in memory from the failed try
        assert all(cache.lookup(q).layer == "exact" for q, _ in pairs[::50])
        cache.flush()
