"""An embedder cheaper than a round trip is asked before the exact read (``Core._embeds_first``).

A vector table or a hashing embedder answers in microseconds; with its vector known, a lookup's
KNN search rides with the exact GET (one round trip, not two). A model (milliseconds) is never
asked first: an exact hit would pay for an embedding it does not need. Nor is a cheap one while
the exact layer answers the lookups new to this process.

Timings on a shared machine move, so the tests that need a cheap embedder set the measured means
(as an idle machine measures them: 0.07 ms an embedding, 0.13 ms a round trip) before each lookup.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import numpy as np
import pytest

import semcache
from semcache import Cache
from semcache.core.engine import Core
from tests.conftest import answer, chat, normalising_embedder
from tests.core.test_lookup_round_trips import GETS, Counted

STORED, ASKED = "How do I reset my password?", "how do i reset my password"


class Flaky(semcache.CallableEmbedder):
    """The normalising embedder, failing while ``broken``, slowed down by ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        inner = normalising_embedder()
        self.broken, self.delay = False, delay

        def embed(texts: list[str]) -> np.ndarray:
            if self.broken:
                raise RuntimeError("embedder down")
            if self.delay:
                time.sleep(self.delay)
            return np.asarray(inner.embed(texts))

        # a model of its own: the embedding cache in Redis spans namespaces, not models
        super().__init__(embed, model_id=f"flaky-{uuid.uuid4().hex[:8]}", dimension=16)


def measured(core: Core, cost: float = 0.07, trip: float = 0.13, share: float = 0.0) -> None:
    core.embeddings.cost.seen = core.round_trip.seen = 100
    core.embeddings.cost.mean, core.round_trip.mean = cost, trip
    core.exact_of_new.share = share


@pytest.fixture
def cheap(redis_url: str, namespace: str) -> Iterator[tuple[Cache, Flaky]]:
    embedder = Flaky()
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        cache.store(chat(STORED), answer("link"))
        cache._core.embeddings.forget()
        yield cache, embedder
        cache.flush()


@pytest.mark.parametrize(
    ("cost", "trip", "share", "first"),
    [
        (0.07, 0.13, 0.0, True),
        (0.07, 0.13, 0.3, True),  # 0.3 x (0.07 + 0.13) < 0.7 x 0.13
        (0.07, 0.13, 0.45, False),  # 0.45 x (0.07 + 0.13) > 0.55 x 0.13
        (0.2, 0.13, 0.0, False),  # dearer than a round trip
        (7.0, 0.13, 0.0, False),  # a local model
    ],
)
def test_the_policy(cheap: tuple[Cache, Flaky], cost: float, trip: float, share: float,
                    first: bool) -> None:  # fmt: skip
    core = cheap[0]._core
    measured(core, cost, trip, share)
    assert core._embeds_first() is first
    core.embeddings.cost.seen = 4  # its warm-up calls only: not known yet
    assert core._embeds_first() is False


def test_a_cheap_embedder_is_asked_first_and_a_paraphrase_is_one_round_trip(
    cheap: tuple[Cache, Flaky],
) -> None:
    cache, _ = cheap
    cache.lookup(chat("an unrelated question, so the index is checked"))
    measured(cache._core)
    counted = Counted(cache._executor)
    result = cache.lookup(chat(ASKED))
    counted.restore()
    assert result.layer == "semantic" and result.response == answer("link")
    assert counted.embedded == [ASKED]
    assert counted.batches == [[*GETS, "FT.SEARCH"]]  # was [GETS + GET], then [SET, FT.SEARCH]
    assert result.embedded and result.embed_ms is not None and result.embed_ms > 0
    # its vector stays in process memory only: the Redis copy would cost more than embedding
    assert cache.client.exists(cache._core.embeddings.key(ASKED)) == 0
    assert cache._core.embeddings.recall(ASKED) is not None
    assert cache.stats().layers["embedding"].embed_calls >= 1


def test_a_new_process_asks_first_once_it_has_measured_both(cheap: tuple[Cache, Flaky]) -> None:
    """Before the index is checked the search goes on its own: still right, and embedded once."""
    cache, _ = cheap
    measured(cache._core)
    cache._core.semantic._ready.clear()
    counted = Counted(cache._executor)
    result = cache.lookup(chat(ASKED))
    counted.restore()
    assert result.layer == "semantic" and result.response == answer("link")
    assert counted.embedded == [ASKED] and counted.batches[0] == GETS
    assert result.embedded and result.embed_ms  # the embedding before the read, on the result


def test_the_exact_layer_still_wins_when_both_answer(cheap: tuple[Cache, Flaky]) -> None:
    cache, _ = cheap
    cache.lookup(chat("an unrelated question, so the index is checked"))
    cache.store(chat(ASKED), answer("its own"))
    cache._core.embeddings.forget()
    measured(cache._core)
    counted = Counted(cache._executor)
    result = cache.lookup(chat(ASKED))
    counted.restore()
    assert result.layer == "exact" and result.response == answer("its own")
    assert counted.batches == [[*GETS, "FT.SEARCH"]] and counted.embedded == [ASKED]
    assert result.embedded and result.embed_ms  # embedded for nothing: the result says so


def test_exact_hits_of_new_texts_turn_it_off(cheap: tuple[Cache, Flaky], redis_url: str) -> None:
    """Another process stores, this one reads: its lookups are new texts and exact hits. Each
    would pay an embedding and a search it does not need, so the share of such hits rises until
    the exact read goes alone again: at 0.35 x 0.13 ms of embedding against 0.13 ms a round trip,
    past 0.43, which a share over the last ~16 passes at the 9th hit."""
    cache, embedder = cheap
    texts = [f"a question another worker answered ({i})" for i in range(40)]
    with Cache(redis_url=redis_url, embedder=embedder, namespace=cache.namespace) as other:
        for text in texts:
            other.store(chat(text), answer(text))
    counted = Counted(cache._executor)
    for text in texts:
        share = cache._core.exact_of_new.share
        measured(cache._core, cost=0.35 * 0.13, share=share)
        assert cache.lookup(chat(text)).response == answer(text)
        assert cache._core.exact_of_new.share > share
    counted.restore()
    assert len(counted.embedded) == 9  # asked first until the share passed the mark
    assert counted.batches[-1] == [*GETS, "GET"] and not cache._core._embeds_first()


def test_a_model_is_never_asked_before_the_exact_read(redis_url: str, namespace: str) -> None:
    """Twenty milliseconds an embedding, measured: never first, whatever the exact share."""
    with Cache(redis_url=redis_url, embedder=Flaky(delay=0.02), namespace=namespace) as cache:
        cache.store(chat("a stored question"), answer("x"))
        for i in range(8):
            assert cache.lookup(chat(f"nobody asked this before, number {i}")).hit is False
        assert cache._core.embeddings.cost.known and cache._core.round_trip.known
        assert cache._core.embeddings.cost.mean > 20  # the embedder's own 20 ms, measured
        assert cache._core.exact_of_new.share == 0.0 and not cache._core._embeds_first()
        cache._core.embeddings.forget()
        counted = Counted(cache._executor)
        assert cache.lookup(chat("a stored question")).layer == "exact"
        counted.restore()
        assert counted.embedded == [] and counted.batches == [[*GETS, "GET"]]
        cache.flush()


def test_a_batch_cheap_per_text_does_not_make_a_slow_embedder_cheap(
    redis_url: str, namespace: str
) -> None:
    """A remote model: 5 ms a call whatever its size. Bulk loads of 100 texts a call cost 0.05 ms
    a text; a lookup's one text still costs 5 ms, so it is never asked first."""
    embedder = Flaky(delay=0.005)
    with Cache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        measured(cache._core, trip=0.13)
        cache._core.embeddings.cost.seen = 0  # only what the bulk loads measure, below
        for batch in range(8):
            texts = [f"a bulk-loaded question ({batch}, {i})" for i in range(100)]
            assert cache.store_many([(chat(t), answer(t)) for t in texts]) == len(texts)
        assert not cache._core.embeddings.cost.known and not cache._core._embeds_first()
        for i in range(8):
            cache.lookup(chat(f"nobody asked this before, number {i}"))
        assert cache._core.embeddings.cost.mean > 5 and not cache._core._embeds_first()
        cache.flush()


def test_a_cheap_embedder_failing_leaves_the_exact_layer_answering(
    cheap: tuple[Cache, Flaky],
) -> None:
    cache, embedder = cheap
    embedder.broken = True
    measured(cache._core)
    result = cache.lookup(chat(STORED))
    assert result.layer == "exact" and result.response == answer("link")
    measured(cache._core)
    missed = cache.lookup(chat(ASKED))  # a new text: no vector, a miss, not an error
    assert missed.hit is False and missed.reason == "embedding-failed"
    assert cache.available  # an embedder's failure is not Redis's
    embedder.broken = False
    measured(cache._core)
    assert cache.lookup(chat(ASKED)).response == answer("link")


async def test_an_async_cache_asks_first_too(redis_url: str, namespace: str) -> None:
    async with semcache.AsyncCache(
        redis_url=redis_url, embedder=Flaky(), namespace=namespace
    ) as cache:
        await cache.store(chat(STORED), answer("link"))
        await cache.lookup(chat("an unrelated question, so the index is checked"))
        cache._core.embeddings.forget()
        measured(cache._core)
        counted = Counted(cache._executor)
        result = await cache.lookup(chat(ASKED))
        counted.restore()
        assert result.layer == "semantic" and result.response == answer("link")
        assert counted.batches == [[*GETS, "FT.SEARCH"]] and result.embedded
        await cache.flush()


def test_reads_through_paused_writes_and_steps_aside_when_redis_freezes(
    cheap: tuple[Cache, Flaky], redis_url: str
) -> None:
    """Embedding first sends reads only (the vector is not written to Redis): under CLIENT PAUSE
    WRITE the paraphrase is served in one round trip, where the fresh vector's SET would wait.
    Under CLIENT PAUSE ALL past the socket timeout the lookup is a miss, no exception, the
    breaker not opened for good; once Redis answers, the vector kept in memory serves at once."""
    import redis

    cache, _ = cheap
    cache.lookup(chat("an unrelated question, so the index is checked"))
    control = redis.Redis.from_url(redis_url)
    counted = Counted(cache._executor)
    try:
        control.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
        measured(cache._core)
        started = time.monotonic()
        result = cache.lookup(chat(ASKED))
        assert result.layer == "semantic" and result.response == answer("link")
        assert counted.batches == [[*GETS, "FT.SEARCH"]] and time.monotonic() - started < 1.0
        control.execute_command("CLIENT", "UNPAUSE")
        other = "How do I reset my password??"  # the same words: a paraphrase of STORED
        control.execute_command("CLIENT", "PAUSE", 600, "ALL")
        measured(cache._core)
        frozen = cache.lookup(chat(other))
        assert frozen.layer is None and frozen.response is None
        time.sleep(0.7)
        counted.batches.clear()
        counted.embedded.clear()
        back = cache.lookup(chat(other))
        assert back.layer == "semantic" and back.response == answer("link")
        assert counted.embedded == []  # embedded before the freeze, kept in memory
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
        counted.restore()
