"""Which plan RediSearch runs a scoped KNN search with, from how much of the index the scope holds.
No I/O: the counts are commands a search carries, their replies read here.

A lookup's KNN search is filtered by its scope tag. RediSearch then picks one of two plans: scan
every document of the scope and compute its distance (``ADHOC_BF``), or walk the HNSW graph and
drop what is out of scope (``BATCHES``). Its own choice scans whole scopes of mid-sized indexes.
Measured here (``benchmarks/bench_hybrid.py``): 20,000 entries in one scope, a bare search 4.34 ms
under RediSearch's choice against 0.96 ms walking the graph. Walking only pays when the scope is a
large share of the index: for a tenant of 500 entries among 100,000 it is the scan that is cheap
(0.46 ms, walking 2.88 ms). So the cache counts, now and then, the scope's
documents and the index's, and asks for ``BATCHES`` when the scope holds at least
:data:`MIN_IN_SCOPE` documents and :data:`MIN_SHARE` of the index; otherwise RediSearch chooses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from semcache.core.lru import LRU
from semcache.redis import commands
from semcache.redis.keys import Keys
from semcache.redis.replies import parse_total

Command = tuple[Any, ...]

MIN_IN_SCOPE = 2000
"""Below this many documents in scope, scanning them is as cheap as walking the graph."""
MIN_SHARE = 0.02
"""Below this share of the index, a walk finds too few documents in scope per step."""
REFRESH_S = 60.0
"""Seconds a count stands before a search counts again. Counting is linear (~4 ms for 100,000
documents here, and Redis does nothing else meanwhile), so a count of more than
:data:`COUNTED_PER_REFRESH` documents stands proportionally longer. The index's total is counted
once per index, whatever the number of scopes (tenants) in it; each scope counts only its own."""
COUNTED_PER_REFRESH = 100_000
PENDING_S = 5.0
"""Seconds before counts sent but never read (their search's lookup was an exact hit, or failed)
are sent again."""
BATCHES = "BATCHES"

Known = tuple[float, Any]  # (good until, value)
K = TypeVar("K")


def walks(in_scope: int, total: int) -> bool:
    """The rule: walk the graph for a scope of ``in_scope`` documents in an index of ``total``."""
    return in_scope >= MIN_IN_SCOPE and in_scope >= MIN_SHARE * total


class HybridPlans:
    """The plan to ask for, per (index, scope), from counts carried by searches now and then.

    Args:
        refresh_s: seconds a count stands (longer for big counts: :data:`COUNTED_PER_REFRESH`).
        clock: monotonic seconds (a test's own clock).
    """

    def __init__(
        self, refresh_s: float = REFRESH_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_s = refresh_s
        self.clock = clock
        self._plans: LRU[tuple[str, str], Known] = LRU(4096)  # (index, scope) -> plan
        self._totals: LRU[str, Known] = LRU(1024)  # index -> its documents
        self._sent: LRU[tuple[str, str], tuple[tuple[str, int], ...]] = LRU(4096)

    def plan(self, index: str, scope: str) -> str | None:
        """The hybrid policy to name in the search (None: RediSearch's own choice)."""
        known = self._plans.get((index, scope))
        return None if known is None else known[1]

    def counts(self, keys: Keys, scope: str) -> tuple[Command, ...]:
        """The counts a search of ``scope`` over the namespace's shards (``keys``) carries: none
        while the last count of the scope stands or one is on its way (so concurrent searches do
        not all count); then the scope's documents in each shard, and each shard's total when that
        is not known. :meth:`learn` reads their replies. Most searches return at the first check."""
        now = self.clock()
        key = (keys.index_of(0), scope)
        if not _due(self._plans, key, now):
            return ()
        indexes = [keys.index_of(shard) for shard in range(keys.shards)]
        layout = [("scope", shard) for shard in range(keys.shards)]
        layout += [
            ("total", s) for s, index in enumerate(indexes) if _due(self._totals, index, now)
        ]
        self._sent.put(key, tuple(layout))
        query = {"scope": f"@scope:{{{scope}}}", "total": "*"}
        return tuple(commands.count(indexes[shard], query[kind]) for kind, shard in layout)

    def learn(self, keys: Keys, scope: str, replies: Sequence[Any]) -> None:
        """Read the replies of the counts :meth:`counts` sent; a failed count leaves RediSearch to
        choose."""
        layout = self._sent.pop((keys.index_of(0), scope))
        if layout is None or len(layout) != len(replies):
            return
        now = self.clock()
        found = [
            (kind, keys.index_of(shard), parse_total(reply))
            for (kind, shard), reply in zip(layout, replies, strict=True)
        ]
        for kind, index, n in found:
            if kind == "total" and n is not None:
                self._totals.put(index, (now + self._stands(n), n))
        for kind, index, n in found:
            if kind != "scope":
                continue
            total = self._totals.get(index)
            of = None if total is None else total[1]
            batches = n is not None and of is not None and walks(n, of)
            until = now + self._stands(n or 0)
            self._plans.put((index, scope), (until, BATCHES if batches else None))

    def _stands(self, counted: int) -> float:
        return self.refresh_s * max(1.0, counted / COUNTED_PER_REFRESH)


def _due(known: LRU[K, Known], key: K, now: float) -> bool:
    """Whether ``key``'s count is due (never taken, or stood its time); if so it is marked on its
    way for :data:`PENDING_S`, keeping the value it had."""
    held = known.get(key)
    if held is not None and now < held[0]:
        return False
    known.put(key, (now + PENDING_S, None if held is None else held[1]))
    return True
