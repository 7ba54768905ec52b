"""What a wrapped call costs in Redis round trips: the compute lock rides with the exact GET and its
release with the store pipeline (a miss took six round trips before, now three)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import semcache


class Counted:
    """The cache's executor, counting the batches (round trips) it sends and what was in them."""

    def __init__(self, executor: Any) -> None:
        self.inner = executor
        self.batches: list[list[str]] = []
        self.original = executor.commands
        executor.commands = self

    def __call__(self, batch: tuple[tuple[Any, ...], ...]) -> Any:
        self.batches.append([str(command[0]) for command in batch])
        return self.original(batch)


@pytest.fixture
def counted(wrap_cache: semcache.Cache) -> Iterator[Counted]:
    counter = Counted(wrap_cache._executor)
    yield counter
    wrap_cache._executor.commands = counter.original


def ask(client: Any, text: str) -> Any:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": text}]
    )


def test_a_wrapped_miss_takes_three_round_trips(wrapped: Any, counted: Counted) -> None:
    ask(wrapped, "warm the index up first")
    counted.batches.clear()
    reply = ask(wrapped, "a question nobody asked before")
    assert semcache.openai.cache_info(reply).layer is None  # type: ignore[union-attr]
    assert counted.batches == [
        # the compute lock, the exact entry, the two generations it depends on, the cached vector
        ["SET", "GET", "GET", "GET", "GET"],
        ["SET", "FT.SEARCH"],  # the fresh vector, the nearest neighbours
        # the entry, its document, the generations read behind them, the lock's release
        ["SET", "DEL", "HSET", "PEXPIRE", "GET", "GET", "EVAL"],
    ]


def test_a_wrapped_hit_takes_one_round_trip_and_frees_its_lock_with_the_next(
    wrapped: Any, wrap_cache: semcache.Cache, counted: Counted
) -> None:
    ask(wrapped, "asked twice")
    counted.batches.clear()
    reply = ask(wrapped, "asked twice")
    assert semcache.openai.cache_info(reply).layer == "exact"  # type: ignore[union-attr]
    # the lock, the entry and its two generations (the vector is in memory)
    assert counted.batches == [["SET", "GET", "GET", "GET"]]
    plan = wrap_cache.plan(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "asked twice"}]},
        upstream=str(wrapped.base_url).rstrip("/"),  # a wrapped client's entries are its server's
    )
    assert wrap_cache.client.exists(plan.lock_key) == 1  # freed with the next round trip
    wrap_cache.lookup_plan(plan)
    assert counted.batches[-1][0] == "EVAL"
    assert wrap_cache.client.exists(plan.lock_key) == 0
