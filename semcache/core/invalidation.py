"""Invalidation: removing entries by key, by tag, by tenant or a whole namespace, from both layers
and from every process's L1 (announced on the namespace's pub/sub channel). No I/O.

An invalidation wins over a store already in flight, as memcached's leases make it win (Nishtala et
al., NSDI 2013): every invalidation first moves its namespace's or tenant's generation; a missed
lookup remembers the generations it saw (:class:`Leases`), and its store reads them again behind its
writes and removes what it wrote if one moved.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Any

from semcache.core.l1 import L1, message
from semcache.core.lru import LRU
from semcache.core.ops import Commands, Flow, Scan
from semcache.core.plan import Plan, Planner
from semcache.core.semantic import SemanticLayer
from semcache.redis import commands
from semcache.redis.keys import Keys, tag_digest, tenant_tag
from semcache.redis.replies import text

#: Keys removed per UNLINK round trip.
CHUNK = 512

#: Missed lookups whose generations are remembered for their stores (the oldest forgotten first).
LEASES = 16384

#: How long a generation outlives its last invalidation: far longer than any call in flight.
GENERATION_TTL_MS = 3_600_000


def generations(plan: Plan) -> tuple[str, str]:
    """The generations a plan's entries depend on: its namespace's and its tenant's."""
    return plan.keys.generation(), plan.keys.generation(plan.tenant_tag)


def bump(generation: str) -> tuple[Any, ...]:
    """Move a generation to a fresh random value: unlike a counter, it cannot come back to a value
    a lookup saw once its key expires or is evicted."""
    return commands.move_generation(generation, secrets.token_hex(8), GENERATION_TTL_MS)


class Leases:
    """The generations each missed lookup saw, by exact key, for the store that follows it."""

    def __init__(self, size: int = LEASES) -> None:
        self._seen: LRU[str, tuple[Any, ...]] = LRU(size)

    def give(self, key: str, seen: tuple[Any, ...]) -> None:
        self._seen.put(key, seen)

    def holds(self, key: str) -> bool:
        """True when a lookup of ``key`` missed and no store took its lease since."""
        return key in self._seen

    def take(self, key: str) -> tuple[Any, ...] | None:
        return self._seen.pop(key)


class Invalidation:
    """Removes what a caller names, and tells every L1 about it."""

    def __init__(self, planner: Planner, semantic: SemanticLayer, l1: L1 | None) -> None:
        self.planner = planner
        self.semantic = semantic
        self.l1 = l1

    def invalidate(
        self,
        *,
        keys: Iterable[str] = (),
        tags: Iterable[str] = (),
        tenant: str | None = None,
        all_tenants: bool = False,
        namespace: str | None = None,
    ) -> Flow[int]:
        """Remove entries by key digest or by tag (both layers, and every process's L1); returns
        the number of Redis keys removed."""
        ks = self.planner.keys(namespace)
        tt = tenant_tag(tenant)
        keys, tags = tuple(keys), tuple(tags)
        # Before looking for victims: a store in flight then either is found or sees the move.
        yield Commands((bump(ks.generation(None if all_tenants else tt)),))
        victims: list[str] = []
        for digest in keys:
            victims += [ks.exact(tt, digest), ks.doc(tt, digest)]
        for tag in tags:
            if all_tenants:
                tag_keys = yield Scan(ks.tag("*", tag_digest(tag)))
            else:
                tag_keys = [ks.tag(tt, tag_digest(tag))]
            for tag_key in tag_keys:
                victims += yield from self._tag_members(ks, text(tag_key))
        removed = yield from self._unlink(victims)
        exact = [ks.exact(tt, digest) for digest in keys]
        digests = [tag_digest(tag) for tag in tags]
        note = message(keys=exact, tags=digests, tenant=None if all_tenants else tt)
        yield from self._announce(ks, note)
        return removed

    def delete(self, *, namespace: str | None = None, tenant: str | None = None) -> Flow[int]:
        """Delete one tenant of a namespace, or (tenant None) the whole namespace and its index."""
        ks = self.planner.keys(namespace)
        tt = None if tenant is None else tenant_tag(tenant)
        yield Commands((bump(ks.generation(tt)),))  # before the scan: see invalidate
        victims: list[str] = []
        for pattern in ks.patterns(tt):
            victims += [text(k) for k in (yield Scan(pattern))]
        removed = yield from self._unlink(victims)
        if tenant is None:
            yield Commands(tuple(commands.drop_index(index) for index in ks.indexes))
            self.semantic.forget_index(ks.namespace)
        yield from self._announce(ks, message(tenant=tt, drop=True))
        return removed

    def _announce(self, ks: Keys, note: str) -> Flow[None]:
        """Drop L1 copies here at once and in every other process through pub/sub."""
        if self.l1 is not None:
            self.l1.apply(ks.namespace, note)
        yield Commands((commands.publish(ks.channel, note),))

    def _tag_members(self, ks: Keys, tag_key: str) -> Flow[list[str]]:
        tenant = tag_key.split(":")[-2]
        (members,) = yield Commands((commands.tag_members(tag_key),))
        if isinstance(members, Exception):  # a plain set, written by an earlier version
            (members,) = yield Commands((commands.old_tag_members(tag_key),))
        out = [tag_key]
        for member in members or ():
            digest = text(member)
            out += [ks.exact(tenant, digest), ks.doc(tenant, digest)]
        return out

    def _unlink(self, victims: list[str]) -> Flow[int]:
        removed = 0
        for start in range(0, len(victims), CHUNK):
            chunk = victims[start : start + CHUNK]
            replies = yield Commands(tuple(commands.unlink(key) for key in chunk))
            removed += sum(r for r in replies if isinstance(r, int))
        return removed
