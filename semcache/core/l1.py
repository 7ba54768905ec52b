"""The optional L1 tier: a tiny in-process TTL + LRU of exact entries in front of Redis.

A viral prompt is then answered from process memory. :class:`L1` does no I/O (the core
consults it before its first Redis round trip); ``semcache.redis.listener.Listener`` is the edge
that keeps copies honest across processes: every invalidation is published on ``semcache:l1:<namespace>`` and every
cache with an L1 drops what a message names (keys, tags of one tenant or of all, a tenant, a whole
namespace). A copy is never served longer than ``ttl`` seconds, whatever happens to messages; on a
lost subscription the whole L1 is cleared, since messages may have been missed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from semcache.core.types import Entry
from semcache.redis.keys import tag_digest

log = logging.getLogger("semcache")


def message(
    *,
    keys: Iterable[str] = (),
    tags: Iterable[str] = (),
    tenant: str | None = None,
    drop: bool = False,
) -> str:
    """An invalidation message: exact keys; tag digests of ``tenant`` (None: every tenant); or,
    with ``drop``, everything of ``tenant`` (None: the whole namespace)."""
    return json.dumps({"keys": list(keys), "tags": list(tags), "tenant": tenant, "drop": drop})


class L1:
    """A thread-safe TTL + LRU map of exact keys to entries.

    ``epoch`` counts invalidations: a lookup notes it before reading Redis and :meth:`put` refuses
    the value if an invalidation arrived meanwhile, so a read racing an invalidation is not cached.
    """

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.ttl = ttl
        self.clock = clock
        self.epoch = 0
        self._items: OrderedDict[str, tuple[float, Entry]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> Entry | None:
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            if item[0] <= self.clock():
                del self._items[key]
                return None
            self._items.move_to_end(key)
            return item[1]

    def put(self, key: str, entry: Entry, epoch: int) -> bool:
        with self._lock:
            if epoch != self.epoch:
                return False
            self._items[key] = (self.clock() + self.ttl, entry)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
            return True

    def discard(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self.epoch += 1
            self._items.clear()

    def apply(self, namespace: str, raw: str | bytes) -> int:
        """Drop what an invalidation message names; returns the number of copies dropped."""
        try:
            data = json.loads(raw)
            dropped = self._matching(namespace, data)
        except (ValueError, TypeError, AttributeError, KeyError):
            log.warning("semcache: malformed L1 invalidation; L1 cleared")
            self.clear()
            return 0
        with self._lock:
            self.epoch += 1
            for key in dropped:
                self._items.pop(key, None)
        return len(dropped)

    def _matching(self, namespace: str, data: Mapping[str, Any]) -> list[str]:
        keys = {str(k) for k in data.get("keys") or ()}
        tags = {str(t) for t in data.get("tags") or ()}
        tenant, drop = data.get("tenant"), bool(data.get("drop"))
        with self._lock:
            items = list(self._items.items())
        out = []
        for key, (_, entry) in items:
            _, _, ns, entry_tenant, _ = key.split(":", 4)
            if ns != namespace:
                continue
            of_tenant = tenant is None or entry_tenant == tenant
            tagged = of_tenant and any(tag_digest(t) in tags for t in entry.tags)
            if key in keys or tagged or (drop and of_tenant):
                out.append(key)
        return out
