"""What a lookup costs in Redis round trips, and ``lookup(vector=...)``.

With the vector known (in process memory, or given by the caller) and the exact layer not expected
to answer, the exact GET and the KNN search go in one round trip; a repeated prompt stays a lone
read of the exact entry; with the vector unknown, the embedding-cache read rides with the exact GET.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import redis

import semcache
from semcache import AsyncCache, Cache
from semcache.core.types import Entry
from semcache.redis.commands import CACHED_SEARCH
from tests.conftest import answer, chat

STORED, ASKED = "How do I reset my password?", "how can I reset my password"
GETS = ["GET", "GET", "GET"]  # the exact entry and the two generations it depends on


def names(batch: tuple[tuple[Any, ...], ...]) -> list[str]:
    """The commands of a batch, but the counts that choose a search's hybrid plan (they ride with
    the first search of a scope now and then: tests/core/test_hybrid.py)."""
    return [str(c[0]) for c in batch if not (c[0] == "FT.SEARCH" and "$vec" not in str(c[2]))]


class Counted:
    """A cache's executor, counting the batches (round trips) it sends and the texts it embeds."""

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.batches: list[list[str]] = []
        self.embedded: list[str] = []
        self.original, self.embedder = executor.commands, executor.embedder
        executor.commands = self.count_sync if not self.is_async() else self.count_async
        executor.embedder = self

    def is_async(self) -> bool:
        return (
            hasattr(self.executor.client, "aclose")
            and "asyncio" in type(self.executor.client).__module__
        )

    def count_sync(self, batch: tuple[tuple[Any, ...], ...]) -> Any:
        self.batches.append(names(batch))
        return self.original(batch)

    async def count_async(self, batch: tuple[tuple[Any, ...], ...]) -> Any:
        self.batches.append(names(batch))
        return await self.original(batch)

    def embed(self, texts: list[str]) -> Any:
        self.embedded += texts
        return self.embedder.embed(texts)

    async def aembed(self, texts: list[str]) -> Any:
        self.embedded += texts
        return await self.embedder.aembed(texts)

    def restore(self) -> None:
        self.executor.commands, self.executor.embedder = self.original, self.embedder


@pytest.fixture
def counted(cache: Cache) -> Iterator[Counted]:
    counter = Counted(cache._executor)
    yield counter
    counter.restore()


def forget_vector(cache: Cache, text: str) -> None:
    """Drop a text's vector from memory and from Redis (the embedding cache spans namespaces)."""
    cache._core.embeddings.forget()
    cache.client.delete(cache._core.embeddings.key(text))


def vector_of(embedder: semcache.Embedder, text: str) -> np.ndarray:
    return np.asarray(embedder.embed([text])[0], dtype=np.float32)


def test_a_repeated_paraphrase_is_one_round_trip(cache: Cache, counted: Counted) -> None:
    cache.store(chat(STORED), answer("link"))
    assert cache.lookup(chat(ASKED)).layer == "semantic"  # its vector is in memory from now on
    counted.batches.clear()
    result = cache.lookup(chat(ASKED))
    assert result.layer == "semantic" and result.response == answer("link")
    assert counted.batches == [[*GETS, "FT.SEARCH"]]
    assert not result.embedded


def test_a_new_text_reads_its_cached_vector_with_the_exact_entry(
    cache: Cache, counted: Counted
) -> None:
    cache.store(chat(STORED), answer("link"))
    forget_vector(cache, ASKED)
    counted.batches.clear()
    assert cache.lookup(chat(ASKED)).layer == "semantic"
    # the exact entry, its generations and the cached vector; then the fresh vector and the search
    assert counted.batches == [[*GETS, "GET"], ["SET", "FT.SEARCH"]]


def paraphrase_cached_in_redis(cache: Cache) -> None:
    """STORED stored, ASKED embedded once (its vector in Redis) and forgotten by the process,
    which has seen its lookups find their vectors in Redis: the lookup script pays here."""
    cache.store(chat(STORED), answer("link"))
    assert cache.lookup(chat(ASKED)).layer == "semantic"
    cache._core.embeddings.forget()
    cache._core.found_in_redis.share = 1.0
    cache.client.script_load(CACHED_SEARCH)  # the server holds it (another test may flush it)


def test_the_script_goes_once_lookups_keep_finding_their_vectors_in_redis(
    cache: Cache, counted: Counted, redis_url: str, embedder: semcache.Embedder
) -> None:
    """Plain reads first; after lookups whose vectors another worker embedded (exact misses, the
    vector in Redis), the script; once lookups are exact hits again, plain reads again (the script
    costs an exact hit more than the plain read)."""
    texts = [f"{ASKED} ({chr(ord('a') + i)})" for i in range(24)]
    cache.store(chat(STORED), answer("link"))
    cache.client.script_load(CACHED_SEARCH)
    with Cache(redis_url=redis_url, embedder=embedder, namespace=cache.namespace) as other:
        for text in texts:  # another worker embeds them: their vectors are in Redis
            other.lookup(chat(text))
    counted.batches.clear()
    for text in texts:
        assert not cache.lookup(chat(text)).embedded  # its vector came from Redis
    firsts = [batch for batch in counted.batches if batch[: len(GETS)] == GETS]
    assert firsts[0] == [*GETS, "GET"] and firsts[-1] == [*GETS, "EVALSHA_RO"]
    switched = firsts.index([*GETS, "EVALSHA_RO"])
    assert 3 <= switched <= 10 and all(b == [*GETS, "EVALSHA_RO"] for b in firsts[switched:])
    for text in texts:  # now stored: exact hits, their vectors no longer looked for
        cache.store(chat(text), answer("exact"))
    cache._core.embeddings.forget()
    counted.batches.clear()
    for _ in range(4):
        for text in texts:
            assert cache.lookup(chat(text)).layer == "exact"
            cache._core.embeddings.forget()
    assert counted.batches[-1] == [*GETS, "GET"]  # the share fell: plain reads


def test_a_vector_another_process_embedded_is_searched_in_the_same_round_trip(
    cache: Cache, redis_url: str, embedder: semcache.Embedder
) -> None:
    """Another worker of the same namespace: its memory does not hold the vector, Redis does. The
    read of the vector and the search with it go as one script, with the exact read: one round
    trip (there were two: the read, then the search)."""
    paraphrase_cached_in_redis(cache)
    with Cache(redis_url=redis_url, embedder=embedder, namespace=cache.namespace) as other:
        other._core.semantic._ready.add(cache.namespace)  # its index checked, as after one lookup
        other._core.found_in_redis.share = 1.0
        counted = Counted(other._executor)
        result = other.lookup(chat(ASKED))
        assert result.layer == "semantic" and result.response == answer("link")
        # then the entry's token state for the verifier (its search row says it holds one)
        assert counted.batches == [[*GETS, "EVALSHA_RO"], ["HGET"]] and counted.embedded == []
        assert not result.embedded
        counted.batches.clear()
        assert other.lookup(chat(ASKED)).response == answer("link")  # the vector is in its memory
        assert counted.batches == [[*GETS, "FT.SEARCH"]]


def search_calls(cache: Cache) -> int:
    return int(cache.client.info("commandstats").get("cmdstat_FT.SEARCH", {}).get("calls", 0))


def test_the_script_does_not_search_when_the_exact_entry_answers(
    cache: Cache, counted: Counted
) -> None:
    cache.store(chat(ASKED), answer("exact"))
    cache.lookup(chat(ASKED + "?"))  # another text: the index is checked, the vector cached
    cache.store(chat(ASKED + "?"), answer("its own"))
    cache._core.embeddings.forget()
    cache._core.found_in_redis.share = 1.0
    cache.client.script_load(CACHED_SEARCH)
    before = search_calls(cache)
    counted.batches.clear()
    result = cache.lookup(chat(ASKED + "?"))
    assert result.layer == "exact" and result.response == answer("its own")
    assert counted.batches == [[*GETS, "EVALSHA_RO"]]
    assert search_calls(cache) == before  # the script saw the entry and did not search


def test_a_server_that_lost_the_script_gets_its_text_once(cache: Cache, counted: Counted) -> None:
    paraphrase_cached_in_redis(cache)
    cache.client.script_flush()  # as after a restart
    counted.batches.clear()
    counted.embedded.clear()
    result = cache.lookup(chat(ASKED))
    assert result.layer == "semantic" and result.response == answer("link")
    assert counted.batches == [[*GETS, "EVALSHA_RO"], ["EVAL_RO"]] and counted.embedded == []
    cache._core.embeddings.forget()
    counted.batches.clear()
    assert cache.lookup(chat(ASKED)).layer == "semantic"
    assert counted.batches == [[*GETS, "EVALSHA_RO"]]  # the server holds it again


@pytest.mark.parametrize("cached", [b"\x00" * 12, np.full(384, np.nan, np.float32).tobytes()])
def test_a_corrupt_cached_vector_is_embedded_again_and_the_answer_still_right(
    cache: Cache, counted: Counted, cached: bytes
) -> None:
    """A vector of another size is not searched with; one of the right size but not finite is
    searched with by the script, and the client, which checks it, embeds and searches again."""
    paraphrase_cached_in_redis(cache)
    cache.client.set(cache._core.embeddings.key(ASKED), cached)
    counted.batches.clear()
    counted.embedded.clear()
    result = cache.lookup(chat(ASKED))
    assert result.layer == "semantic" and result.response == answer("link")
    assert result.embedded and counted.embedded == [ASKED]
    assert counted.batches == [[*GETS, "EVALSHA_RO"], ["SET", "FT.SEARCH"]]
    assert cache.client.get(cache._core.embeddings.key(ASKED)) != cached  # the sound one, back


def test_a_server_that_refuses_scripts_gets_plain_reads_and_no_outage(
    cache: Cache, redis_url: str, embedder: semcache.Embedder
) -> None:
    """An ACL without read-only scripts (or a Redis before 7): the first refusal turns the script
    off for that cache, which embeds that once and reads plainly since; nothing opens the breaker."""
    paraphrase_cached_in_redis(cache)
    user = f"noscript-{cache.namespace}"
    cache.client.acl_setuser(user, enabled=True, passwords=["+pw"], keys=["~*"],
                             commands=["+@all", "-evalsha_ro", "-eval_ro"])  # fmt: skip
    pool = cache.client.connection_pool
    kwargs = {**pool.connection_kwargs, "username": user, "password": "pw"}
    client = redis.Redis(connection_pool=redis.ConnectionPool(pool.connection_class, **kwargs))
    try:
        with Cache(redis_client=client, embedder=embedder, namespace=cache.namespace) as limited:
            limited._core.semantic._ready.add(cache.namespace)
            limited._core.found_in_redis.share = 1.0
            counted = Counted(limited._executor)
            for _ in range(3):
                result = limited.lookup(chat(ASKED))
                assert result.layer == "semantic" and result.response == answer("link")
                limited._core.embeddings.forget()
            # (the HGET: the verifier's token state the entry holds, read once by this verifier)
            assert counted.batches == [[*GETS, "EVALSHA_RO"], ["SET", "FT.SEARCH"], ["HGET"],
                                       [*GETS, "GET"], ["FT.SEARCH"],
                                       [*GETS, "GET"], ["FT.SEARCH"]]  # fmt: skip
            assert limited.available and not limited._core.scripts
    finally:
        client.close()
        cache.client.acl_deluser(user)


def test_a_repeated_prompt_stays_a_lone_read_of_its_entry(cache: Cache, counted: Counted) -> None:
    cache.lookup(chat(STORED))  # a miss, then its store: the exact layer will answer
    cache.store(chat(STORED), answer("link"))
    counted.batches.clear()
    for _ in range(2):
        assert cache.lookup(chat(STORED)).layer == "exact"
    assert counted.batches == [GETS, GETS]


def test_an_entry_another_process_stored_costs_one_search_then_none(
    cache: Cache, counted: Counted, redis_url: str, embedder: semcache.Embedder
) -> None:
    cache.store(chat(STORED), answer("link"))
    assert cache.lookup(chat(ASKED)).layer == "semantic"  # a miss of the exact key: searched next
    with Cache(redis_url=redis_url, embedder=embedder, namespace=cache.namespace) as other:
        other.store(chat(ASKED), answer("its own"))  # the lease of this process stays held
    counted.batches.clear()
    for _ in range(3):
        assert cache.lookup(chat(ASKED)).response == answer("its own")
    assert counted.batches == [[*GETS, "FT.SEARCH"], GETS, GETS]


def test_a_given_vector_is_searched_with_the_exact_read_and_never_embedded(
    cache: Cache, counted: Counted, embedder: semcache.Embedder
) -> None:
    cache.store(chat(STORED), answer("link"))
    forget_vector(cache, ASKED)
    vector = vector_of(embedder, ASKED)
    counted.batches.clear()
    counted.embedded.clear()
    result = cache.lookup(chat(ASKED), vector=vector.tolist())
    assert result.layer == "semantic" and result.response == answer("link")
    assert counted.batches == [[*GETS, "FT.SEARCH"]]
    assert counted.embedded == [] and not result.embedded
    # a caller's vector is not written to the embedding cache (it is the caller's, not ours)
    assert cache.client.exists(cache._core.embeddings.key(ASKED)) == 0
    plan = cache.plan(chat(ASKED))
    assert cache.lookup_plan(plan, vector=vector).layer == "semantic"
    assert counted.embedded == []


def test_the_exact_layer_wins_when_both_answer_in_one_round_trip(
    cache: Cache, counted: Counted, embedder: semcache.Embedder
) -> None:
    cache.store(chat(STORED), answer("semantic answer"))
    cache.store(chat(ASKED), answer("exact answer"))
    counted.batches.clear()
    result = cache.lookup(chat(ASKED), vector=vector_of(embedder, ASKED))
    assert result.layer == "exact" and result.response == answer("exact answer")
    assert counted.batches == [[*GETS, "FT.SEARCH"]]


def test_a_given_vector_keeps_tenants_and_scopes_apart(
    cache: Cache, embedder: semcache.Embedder
) -> None:
    vector = vector_of(embedder, ASKED)
    cache.store(chat(STORED), answer("a's"), tenant="a")
    assert cache.lookup(chat(ASKED), tenant="b", vector=vector).layer is None
    assert cache.lookup(chat(ASKED, system="be terse"), tenant="a", vector=vector).layer is None
    assert cache.lookup(chat(ASKED), tenant="a", vector=vector).response == answer("a's")


def test_an_invalidated_entry_is_not_served_to_a_given_vector(
    cache: Cache, embedder: semcache.Embedder
) -> None:
    cache.store(chat(STORED), answer("old"), tags=("doc",))
    cache.invalidate(tags=("doc",))
    assert cache.lookup(chat(ASKED), vector=vector_of(embedder, ASKED)).layer is None


@pytest.mark.parametrize(
    "bad",
    [
        [0.1] * 383,  # another dimension
        [[0.1] * 384],  # two dimensions
        [float("nan")] + [0.1] * 383,
        [float("inf")] + [0.1] * 383,
        [0.0] * 384,  # no direction
        ["a"] * 384,
        "not a vector",
    ],
)
def test_a_bad_vector_is_invalid_before_any_io_and_not_an_outage(
    cache: Cache, counted: Counted, bad: Any
) -> None:
    for _ in range(10):  # more than enough failures to open the breaker, were they counted
        with pytest.raises(semcache.InvalidRequestError, match="vector"):
            cache.lookup(chat(ASKED), vector=bad)
        with pytest.raises(semcache.InvalidRequestError, match="vector"):
            cache.lookup_plan(cache.plan(chat(ASKED)), vector=bad)
    assert counted.batches == []
    assert cache.available
    assert cache.lookup(chat(ASKED)).reason != "unavailable"


def test_only_the_served_candidate_is_decoded(
    cache: Cache, counted: Counted, monkeypatch: pytest.MonkeyPatch
) -> None:
    for text in (STORED, "How do I reset my password quickly?", "How can I reset a password?",
                 "Reset my password, how?"):  # fmt: skip
        cache.store(chat(text), answer(text))
    cache.lookup(chat(ASKED))
    decoded: list[object] = []
    original = Entry.from_json

    def counting(raw: bytes | str) -> Entry | None:
        decoded.append(raw)
        return original(raw)

    monkeypatch.setattr(Entry, "from_json", staticmethod(counting))
    counted.batches.clear()
    result = cache.lookup(chat(ASKED))
    assert result.layer == "semantic"
    assert counted.batches == [[*GETS, "FT.SEARCH"]]  # four candidates came back
    assert len(decoded) == 1


async def test_async_lookup_with_a_given_vector_is_one_round_trip(
    redis_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    async with AsyncCache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        await cache.store(chat(STORED), answer("link"))
        counted = Counted(cache._executor)
        result = await cache.lookup(chat(ASKED), vector=vector_of(embedder, ASKED))
        assert result.layer == "semantic" and result.response == answer("link")
        assert counted.batches == [[*GETS, "FT.SEARCH"]] and counted.embedded == []
        with pytest.raises(semcache.InvalidRequestError):
            await cache.lookup(chat(ASKED), vector=[1.0, 2.0])
        assert cache.available
        counted.restore()
        await cache.flush()


async def test_async_lookup_of_a_vector_cached_in_redis_is_one_round_trip(
    redis_url: str, embedder: semcache.Embedder, namespace: str
) -> None:
    async with AsyncCache(redis_url=redis_url, embedder=embedder, namespace=namespace) as cache:
        await cache.store(chat(STORED), answer("link"))
        assert (await cache.lookup(chat(ASKED))).layer == "semantic"
        cache._core.embeddings.forget()
        cache._core.found_in_redis.share = 1.0
        await cache.client.script_load(CACHED_SEARCH)
        counted = Counted(cache._executor)
        result = await cache.lookup(chat(ASKED))
        assert result.layer == "semantic" and result.response == answer("link")
        assert counted.batches == [[*GETS, "EVALSHA_RO"]] and counted.embedded == []
        counted.restore()
        await cache.flush()


def test_only_a_refusal_turns_the_script_off_not_a_passing_error() -> None:
    from redis.exceptions import NoPermissionError, NoScriptError, ResponseError

    from semcache.redis.replies import lost_script, refused_script

    assert refused_script(NoPermissionError("User u has no permissions to run 'evalsha_ro'"))
    assert refused_script(ResponseError("unknown command 'EVALSHA_RO', with args beginning with:"))
    for passing in (ResponseError("BUSY Redis is busy running a script"),
                    ResponseError("LOADING Redis is loading the dataset in memory"),
                    NoScriptError("No matching script"), [b"vector"], None):  # fmt: skip
        assert not refused_script(passing)
    assert lost_script(NoScriptError("No matching script. Please use EVAL."))
    assert not lost_script(ResponseError("NOPERM"))


def test_the_script_reads_through_paused_writes_and_steps_aside_when_redis_freezes(
    cache: Cache, counted: Counted, redis_url: str
) -> None:
    """CLIENT PAUSE WRITE holds writes, not reads: the read-only script still serves in one round
    trip (a plain EVALSHA would wait). CLIENT PAUSE ALL past the socket timeout: the lookup is a
    miss, no exception; once Redis answers again, the scripted hit comes back."""
    paraphrase_cached_in_redis(cache)
    control = redis.Redis.from_url(redis_url)
    try:
        control.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
        counted.batches.clear()
        result = cache.lookup(chat(ASKED))
        assert result.layer == "semantic" and result.response == answer("link")
        assert counted.batches[0] == [*GETS, "EVALSHA_RO"]
        control.execute_command("CLIENT", "UNPAUSE")
        cache._core.embeddings.forget()
        control.execute_command("CLIENT", "PAUSE", 600, "ALL")
        frozen = cache.lookup(chat(ASKED))
        assert frozen.layer is None and frozen.response is None
        time.sleep(0.7)
        cache._core.embeddings.forget()
        counted.batches.clear()
        back = cache.lookup(chat(ASKED))
        assert back.layer == "semantic" and back.response == answer("link")
        assert counted.batches[0] == [*GETS, "EVALSHA_RO"]
    finally:
        control.execute_command("CLIENT", "UNPAUSE")
        control.close()
