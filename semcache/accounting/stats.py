"""What the cache saved and what it cost: the typed :class:`Stats` of a namespace, and its renderings.

Counters are a flat ``{"<layer>:<field>": number}`` mapping, the same in process and in the Redis
hashes, so merging processes and days is a sum. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from semcache.accounting import render
from semcache.accounting.counters import (
    BUCKETS_MS as BUCKETS_MS,
)
from semcache.accounting.counters import (
    FLOAT_FIELDS as FLOAT_FIELDS,
)
from semcache.accounting.counters import (
    LAYERS as LAYERS,
)
from semcache.accounting.counters import (
    PROMETHEUS_CONTENT_TYPE as PROMETHEUS_CONTENT_TYPE,
)
from semcache.accounting.counters import Counters as Counters
from semcache.accounting.counters import LayerStats as LayerStats
from semcache.accounting.counters import add as add
from semcache.accounting.counters import bucket as bucket
from semcache.accounting.counters import quantile as quantile


@dataclass(frozen=True, slots=True)
class Stats:
    """What a namespace's cache saved and cost, per layer, over some days.

    ``source`` says whose counts these are: ``"redis"`` (every process, merged) or ``"process"``
    (this process only, e.g. when Redis was unavailable).

    Example::

        stats = cache.stats()
        stats.layers["exact"].usd_saved, stats.net_usd_saved
        print(stats.prometheus())
    """

    namespace: str
    layers: Mapping[str, LayerStats]
    lookups: int = 0
    hits: int = 0
    skipped: int = 0
    """Lookups that consulted no layer (bypass, stochastic policy, Redis unavailable)."""
    stores: int = 0
    store_ms: float = 0.0
    unpriced_models: tuple[str, ...] = ()
    days: tuple[str, ...] = ()
    source: Literal["redis", "process"] = "redis"
    top_entries: tuple[tuple[str, int], ...] = ()
    """The most-hit entries as (``<tenant tag>:<key digest>``, hits), most hit first."""
    feedback: int = 0
    """``cache.feedback`` calls; ``wrong_feedback`` of them said the answer was wrong, and
    ``feedback_applied`` of them reached an entry's evidence."""
    wrong_feedback: int = 0
    feedback_applied: int = 0
    breaker_opened: int = 0
    """Times the circuit breaker opened (the cache stepped aside) and closed again."""
    breaker_closed: int = 0

    @classmethod
    def from_counters(
        cls,
        namespace: str,
        counters: Mapping[str, float],
        *,
        days: Iterable[str] = (),
        source: Literal["redis", "process"] = "redis",
        top_entries: tuple[tuple[str, int], ...] = (),
    ) -> Stats:
        layers = {name: LayerStats.from_counters(name, counters) for name in LAYERS}
        if not layers["l1"].lookups:
            del layers["l1"]
        unpriced = sorted(k[9:] for k, v in counters.items() if k.startswith("unpriced:") and v)
        return cls(
            namespace=namespace,
            layers=layers,
            lookups=round(counters.get("all:lookups", 0)),
            hits=round(counters.get("all:hits", 0)),
            skipped=round(counters.get("all:skipped", 0)),
            stores=round(counters.get("all:stores", 0)),
            store_ms=counters.get("all:store_ms", 0.0),
            unpriced_models=tuple(unpriced),
            days=tuple(sorted(days)),
            source=source,
            top_entries=top_entries,
            feedback=round(counters.get("all:feedback", 0)),
            wrong_feedback=round(counters.get("all:wrong_feedback", 0)),
            feedback_applied=round(counters.get("all:feedback_applied", 0)),
            breaker_opened=round(counters.get("all:breaker_opened", 0)),
            breaker_closed=round(counters.get("all:breaker_closed", 0)),
        )

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def usd_saved(self) -> float:
        return sum(layer.usd_saved for layer in self.layers.values())

    @property
    def overhead_usd(self) -> float:
        return sum(layer.overhead_usd for layer in self.layers.values())

    @property
    def overhead_ms(self) -> float:
        """Time the cache cost: lookups that missed, embedder calls on misses, and stores."""
        return sum(layer.overhead_ms for layer in self.layers.values()) + self.store_ms

    @property
    def net_usd_saved(self) -> float:
        return self.usd_saved - self.overhead_usd

    @property
    def net_ms_saved(self) -> float:
        return sum(layer.latency_saved_ms for layer in self.layers.values()) - self.overhead_ms

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``semcache stats --json``."""
        return {
            "namespace": self.namespace,
            "source": self.source,
            "days": list(self.days),
            "lookups": self.lookups,
            "hits": self.hits,
            "hit_rate": self.hit_rate,
            "skipped": self.skipped,
            "stores": self.stores,
            "layers": {name: layer.to_dict() for name, layer in self.layers.items()},
            "usd_saved": self.usd_saved,
            "overhead": {"usd": self.overhead_usd, "ms": self.overhead_ms},
            "net_usd_saved": self.net_usd_saved,
            "net_ms_saved": self.net_ms_saved,
            "unpriced_models": list(self.unpriced_models),
            "feedback": {
                "total": self.feedback,
                "wrong": self.wrong_feedback,
                "applied": self.feedback_applied,
            },
            "breaker": {"opened": self.breaker_opened, "closed": self.breaker_closed},
            "top_entries": [
                {"tenant": key.split(":", 1)[0], "key": key.split(":", 1)[-1], "hits": hits}
                for key, hits in self.top_entries
            ],
        }

    def prometheus(self) -> str:
        """The stats in the Prometheus text exposition format (:data:`PROMETHEUS_CONTENT_TYPE`)."""
        return render.prometheus(self)

    def table(self) -> str:
        """A plain-text table for terminals."""
        return render.table(self)
