"""Stampede control: identical misses share one upstream call; hot entries refresh early.

- In one process, identical concurrent misses wait for the first (single-flight, in the shells).
- Across processes, the first miss takes a short Redis lock (``SET NX PX``); the others poll the exact
  key for the stored answer until ``stampede_wait`` runs out, then call upstream themselves.
- XFetch (Vattani, Chierichetti, Lowenstein 2015): a hit near its expiry is flagged ``refresh`` with a
  probability that grows as expiry nears and with the cost of recomputing, so one caller refreshes a
  hot entry before it expires instead of all callers at once after (see ``Planner.hit``).

The flows here yield operations like the rest of the core; nothing touches a socket.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from semcache.core.ops import Commands, Flow, Sleep
from semcache.core.plan import Plan, Planner
from semcache.core.types import Entry, LookupResult
from semcache.redis import commands
from semcache.redis.replies import is_ok

#: Seconds a streamed leader may go without a chunk read before its followers stop waiting for
#: it (a stream handed to a caller that never reads or closes it must not hold them).
STREAM_IDLE = 1.0


@dataclass(eq=False)
class Flight:
    """One caller's place among identical concurrent misses (see ``Cache.join_flight``).

    ``shared`` is the hit another caller stored while this one waited; when it is None, this caller
    calls upstream, stores, and leaves the flight so that the callers waiting on it go on.
    ``failure`` is what a leader's upstream answered when it failed (a server error), handed to
    its followers instead of sending each of them upstream at once.
    """

    plan: Plan
    shared: LookupResult | None = None
    leader: bool = False
    lock: str | None = None
    event: Any = None
    failure: Any = None
    progress: float | None = None
    """When the leader's stream last moved (None: not streaming)."""
    abandoned: bool = False
    """The leader left without an answer or a failure to hand on (its task was cancelled):
    its followers join the flight again, one of them leading."""

    def touch(self) -> None:
        """The leader's stream moved: its followers keep waiting."""
        self.progress = time.monotonic()

    def stalled(self) -> bool:
        """A streamed leader whose stream nobody has read for :data:`STREAM_IDLE` seconds."""
        return self.progress is not None and time.monotonic() - self.progress > STREAM_IDLE

    def waiting(self, wait: float) -> Iterator[float]:
        """The slices a follower waits in: ``wait`` seconds in all, cut short by a stall or by
        the leader's end."""
        deadline = time.monotonic() + wait
        while not self.event.is_set() and not self.stalled():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            yield min(left, 0.05)


def follower_wait(stampede_wait: float, timeout: float | None) -> float:
    """How long a follower waits: never past its own request's timeout."""
    return stampede_wait if timeout is None else max(0.0, min(stampede_wait, timeout))


def acquire(plan: Plan, token: str, ttl_ms: int) -> Flow[bool]:
    """Take the request's compute lock; True when this caller should call upstream. When the
    SET's reply is lost (it may have been executed), the lock is read: a caller must not wait on
    a lock that is its own."""
    try:
        (reply,) = yield Commands((commands.take_lock(plan.lock_key, token, ttl_ms),))
    except Exception:
        return (yield from owns_lock(plan, token))
    return is_ok(reply)


def owns_lock(plan: Plan, token: str) -> Flow[bool]:
    """Whether the request's compute lock holds ``token`` (after a reply that was lost)."""
    (reply,) = yield Commands((commands.get(plan.lock_key),))
    return reply in (token, token.encode())


def release(plan: Plan, token: str) -> Flow[None]:
    yield Commands((commands.release_lock(plan.lock_key, token),))


def await_entry(
    planner: Planner, plan: Plan, wait: float, poll: float = 0.025
) -> Flow[LookupResult | None]:
    """Poll the exact key until another process stores the answer, or ``wait`` seconds pass."""
    deadline = time.monotonic() + wait
    while True:
        (raw, lock) = yield Commands((commands.get(plan.exact_key), commands.exists(plan.lock_key)))
        entry = Entry.from_json(raw) if isinstance(raw, bytes) else None
        if entry is not None:
            return planner.hit(plan, "exact", entry, 1.0, plan.digest)
        if not lock or time.monotonic() >= deadline:  # the leader gave up, or we waited enough
            return None
        yield Sleep(poll)


def token() -> str:
    return f"{random.getrandbits(64):016x}"
