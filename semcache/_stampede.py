"""Stampede control: identical misses share one upstream call; hot entries refresh early.

- In one process, identical concurrent misses wait for the first (single-flight, in the shells).
- Across processes, the first miss takes a short Redis lock (``SET NX PX``); the others poll the exact
  key for the stored answer until ``stampede_wait`` runs out, then call upstream themselves.
- XFetch (Vattani, Chierichetti, Lowenstein 2015): a hit near its expiry is flagged ``refresh`` with a
  probability that grows as expiry nears and with the cost of recomputing, so one caller refreshes a
  hot entry before it expires instead of all callers at once after.

The flows here yield operations like the rest of the core; nothing touches a socket.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from semcache._core import Commands, Core, Flow, Plan, Sleep
from semcache._redis import PREFIX
from semcache._types import Entry, LookupResult

# Delete the lock only if it still holds our token (a slow leader must not free another's lock).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(eq=False)
class Flight:
    """One caller's place among identical concurrent misses (see ``Cache.join_flight``).

    ``shared`` is the hit another caller stored while this one waited; when it is None, this caller
    calls upstream, stores, and leaves the flight so that the callers waiting on it go on.
    """

    plan: Plan
    shared: LookupResult | None = None
    leader: bool = False
    lock: str | None = None
    event: Any = None


def lock_key(plan: Plan) -> str:
    return f"{PREFIX}:l:{plan.keys.namespace}:{plan.tenant_tag}:{plan.digest}"


def acquire(plan: Plan, token: str, ttl_ms: int) -> Flow[bool]:
    """Take the request's compute lock; True when this caller should call upstream."""
    (reply,) = yield Commands((("SET", lock_key(plan), token, "NX", "PX", ttl_ms),))
    return reply is True or reply in (b"OK", "OK")


def release(plan: Plan, token: str) -> Flow[None]:
    yield Commands((("EVAL", RELEASE, 1, lock_key(plan), token),))


def await_entry(
    core: Core, plan: Plan, wait: float, poll: float = 0.025
) -> Flow[LookupResult | None]:
    """Poll the exact key until another process stores the answer, or ``wait`` seconds pass."""
    deadline = time.monotonic() + wait
    while True:
        (raw, lock) = yield Commands((("GET", plan.exact_key), ("EXISTS", lock_key(plan))))
        entry = Entry.from_json(raw) if isinstance(raw, bytes) else None
        if entry is not None:
            return core._hit(plan, "exact", entry, 1.0, plan.digest)
        if not lock or time.monotonic() >= deadline:  # the leader gave up, or we waited enough
            return None
        yield Sleep(poll)


def token() -> str:
    return f"{random.getrandbits(64):016x}"
