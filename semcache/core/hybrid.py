"""Which plan RediSearch runs a scoped KNN search with, from how much of the index the scope holds.
No I/O: the counts are commands a search carries, their replies read here.

A lookup's KNN search is filtered by its scope tag. RediSearch then picks one of two plans: scan
every document of the scope and compute its distance (``ADHOC_BF``), or walk the HNSW graph and
drop what is out of scope (``BATCHES``). Its own choice scans whole scopes of mid-sized indexes.
Measured here (``benchmarks/bench_hybrid.py``): one scope of 20,000 entries, 1.98 ms a search
against 0.41 ms walking the graph; a scope of 5,000 in an index of 100,000, 5.0 against 1.1 ms.
Walking only pays when the scope is a large share of the index: for 500 entries of 100,000 it is
the scan that is cheap (0.8 ms, walking 3.0 ms). So the cache counts, now and then, the scope's
documents and the index's, and asks for ``BATCHES`` when the scope holds at least
:data:`MIN_IN_SCOPE` documents and :data:`MIN_SHARE` of the index; otherwise RediSearch chooses.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from semcache.core.lru import LRU
from semcache.redis import commands
from semcache.redis.replies import parse_total

Command = tuple[Any, ...]

MIN_IN_SCOPE = 2000
"""Below this many documents in scope, scanning them is as cheap as walking the graph."""
MIN_SHARE = 0.02
"""Below this share of the index, a walk finds too few documents in scope per step."""
REFRESH_S = 60.0
"""Seconds a count stands before the next search of the scope counts again; an index of more
than :data:`COUNTED_PER_REFRESH` documents is counted proportionally less often (counting is
linear: ~4 ms for 100,000 documents here, and Redis does nothing else meanwhile)."""
COUNTED_PER_REFRESH = 100_000
PENDING_S = 5.0
"""Seconds before counts sent but never read (their search's lookup was an exact hit, or failed)
are sent again."""
BATCHES = "BATCHES"


class HybridPlans:
    """The plan to ask for, per (index, scope), from counts carried by searches now and then.

    Args:
        refresh_s: seconds between counts of one scope.
        clock: monotonic seconds (a test's own clock).
    """

    def __init__(
        self, refresh_s: float = REFRESH_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.refresh_s = refresh_s
        self.clock = clock
        self._plans: LRU[tuple[str, str], tuple[float, str | None]] = LRU(4096)

    def plan(self, index: str, scope: str) -> str | None:
        """The hybrid policy to name in the search (None: RediSearch's own choice)."""
        known = self._plans.get((index, scope))
        return None if known is None else known[1]

    def due(self, index: str, scope: str) -> bool:
        """Whether this search should carry counts: the last count of the scope is older than
        :attr:`refresh_s` and none is on its way (concurrent searches do not all count)."""
        key = (index, scope)
        now = self.clock()
        known = self._plans.get(key)
        if known is not None and now < known[0]:
            return False
        self._plans.put(key, (now + PENDING_S, None if known is None else known[1]))
        return True

    @staticmethod
    def counts(index: str, scope: str) -> tuple[Command, Command]:
        """The scope's documents and the index's, counted."""
        return commands.count(index, f"@scope:{{{scope}}}"), commands.count(index, "*")

    def learn(self, index: str, scope: str, replies: Sequence[Any]) -> None:
        """Read the counts' replies; a failed count leaves RediSearch to choose."""
        in_scope, total = (parse_total(r) for r in replies)
        batches = False
        refresh = self.refresh_s
        if in_scope is not None and total is not None:
            batches = in_scope >= MIN_IN_SCOPE and in_scope >= MIN_SHARE * total
            refresh *= max(1.0, total / COUNTED_PER_REFRESH)
        self._plans.put((index, scope), (self.clock() + refresh, BATCHES if batches else None))
