"""Counters and the per-layer stats they add up to. No I/O.

Counters are a flat ``{"<layer>:<field>": number}`` mapping, the same in process and in the Redis
hashes, so merging processes and days is a sum.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

Counters = dict[str, float]

#: Upper bounds (ms) of the lookup latency histogram's buckets; the last is +Inf.
BUCKETS_MS: tuple[float, ...] = (
    0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75,
    100, 150, 250, 500, 1000, 2500, 5000, 10000, math.inf,
)  # fmt: skip

#: The layers a report shows, in request order (``l1`` only when it saw lookups).
LAYERS = ("l1", "exact", "semantic", "embedding")

#: Counters that hold fractional values (HINCRBYFLOAT in Redis); all others are integers.
FLOAT_FIELDS = frozenset(
    {
        "usd_saved", "provider_discount_usd", "latency_saved_ms", "overhead_ms", "overhead_usd",
        "lookup_ms", "embed_ms", "store_ms",
    }
)  # fmt: skip

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def bucket(ms: float) -> int:
    """The index of the histogram bucket a latency falls in."""
    return bisect.bisect_left(BUCKETS_MS, ms)


def quantile(buckets: tuple[int, ...], q: float) -> float | None:
    """The q-quantile (ms) of a bucketed histogram, interpolated inside its bucket like
    Prometheus' ``histogram_quantile``; None when empty. The +Inf bucket reports its lower bound."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(buckets):
        if count and seen + count >= rank:
            lower = BUCKETS_MS[i - 1] if i else 0.0
            upper = BUCKETS_MS[i]
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return BUCKETS_MS[-2]


def add(into: Counters, other: Mapping[str, float]) -> Counters:
    """Add ``other`` to ``into`` in place; returns ``into``."""
    for key, value in other.items():
        into[key] = into.get(key, 0.0) + value
    return into


@dataclass(frozen=True, slots=True)
class LayerStats:
    """One layer's lookups, savings and costs.

    For ``exact``, ``semantic`` and ``l1``, the histogram holds the end-to-end latency of lookups
    that ended at the layer (its hits and its final misses). For ``embedding`` (the embedding cache)
    it holds the embedder's call time on embedding-cache misses, and the latency it saved is an
    estimate: the semantic embedder's hits times its mean measured call. The embedding row also
    counts users' own embedding calls through the wrapper (``upstream_*``): their hits save the
    upstream model's tokens and dollars.
    """

    name: str
    lookups: int = 0
    hits: int = 0
    misses: int = 0
    prompt_tokens_saved: int = 0
    completion_tokens_saved: int = 0
    provider_cached_tokens: int = 0
    """Prompt tokens of answered calls the provider had served from its own prompt cache: priced at
    the cached rate, so the provider's discount is not claimed again (``provider_discount_usd``)."""
    counted_hits: int = 0
    """Hits whose tokens were counted with tiktoken because the stored response had no usage."""
    usd_saved: float = 0.0
    provider_discount_usd: float = 0.0
    unpriced_hits: int = 0
    unpriced_tokens: int = 0
    latency_saved_ms: float = 0.0
    overhead_ms: float = 0.0
    overhead_usd: float = 0.0
    lookup_ms: float = 0.0
    """Sum of the latencies in the histogram."""
    embed_calls: int = 0
    embed_tokens: int = 0
    upstream_lookups: int = 0
    """Embedding-cache lookups of users' own embedding calls (through the wrapper)."""
    upstream_hits: int = 0
    embed_ms: float = 0.0
    judge_calls: int = 0
    """Second-opinion (judge) calls of the decision stage; their cost is in ``overhead_usd``."""
    buckets: tuple[int, ...] = field(default=(0,) * len(BUCKETS_MS))

    @classmethod
    def from_counters(cls, name: str, counters: Mapping[str, float]) -> LayerStats:
        values: dict[str, Any] = {}
        for f in fields(cls)[1:-1]:
            raw = counters.get(f"{name}:{f.name}", 0.0)
            values[f.name] = raw if f.name in FLOAT_FIELDS else round(raw)
        n = len(BUCKETS_MS)
        values["buckets"] = tuple(round(counters.get(f"{name}:b{i}", 0)) for i in range(n))
        if name == "embedding" and values["embed_calls"]:  # the semantic embedder's hits only
            own_hits = values["hits"] - values["upstream_hits"]
            values["latency_saved_ms"] = own_hits * values["embed_ms"] / values["embed_calls"]
        return cls(name=name, **values)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.lookups if self.lookups else 0.0

    @property
    def tokens_saved(self) -> int:
        return self.prompt_tokens_saved + self.completion_tokens_saved

    @property
    def net_usd_saved(self) -> float:
        return self.usd_saved - self.overhead_usd

    @property
    def net_ms_saved(self) -> float:
        return self.latency_saved_ms - self.overhead_ms

    def quantile(self, q: float) -> float | None:
        """The q-quantile of this layer's latency histogram in ms (None when empty)."""
        return quantile(self.buckets, q)

    @property
    def p50_ms(self) -> float | None:
        return self.quantile(0.5)

    @property
    def p95_ms(self) -> float | None:
        return self.quantile(0.95)

    @property
    def p99_ms(self) -> float | None:
        return self.quantile(0.99)

    def to_dict(self) -> dict[str, Any]:
        """The layer as JSON-ready values (see :meth:`Stats.to_dict`)."""
        out: dict[str, Any] = {
            "lookups": self.lookups, "hits": self.hits, "misses": self.misses,
            "hit_rate": self.hit_rate, "tokens_saved": self.tokens_saved,
            "prompt_tokens_saved": self.prompt_tokens_saved,
            "completion_tokens_saved": self.completion_tokens_saved,
            "provider_cached_tokens": self.provider_cached_tokens,
            "counted_hits": self.counted_hits, "usd_saved": self.usd_saved,
            "provider_discount_usd": self.provider_discount_usd,
            "unpriced_hits": self.unpriced_hits, "unpriced_tokens": self.unpriced_tokens,
            "latency_saved_ms": self.latency_saved_ms,
            "p50_ms": self.p50_ms, "p95_ms": self.p95_ms, "p99_ms": self.p99_ms,
            "overhead": {"usd": self.overhead_usd, "ms": self.overhead_ms},
            "net_usd_saved": self.net_usd_saved, "net_ms_saved": self.net_ms_saved,
        }  # fmt: skip
        if self.name == "semantic":
            out["judge_calls"] = self.judge_calls
        if self.name == "embedding":
            out |= {"calls": self.embed_calls, "embed_tokens": self.embed_tokens}
            out |= {"upstream_lookups": self.upstream_lookups, "upstream_hits": self.upstream_hits}
            out["embed_ms"] = self.embed_ms
        return out
