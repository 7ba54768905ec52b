"""What a replay found, per request and in total: outcomes, savings, per-layer figures. No I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from semcache.accounting.savings import Saving as Saving

ReplayLayer = Literal["exact", "semantic"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one request of the log fared at one threshold."""

    index: int
    layer: ReplayLayer | None
    matched: int | None = None
    """Index of the request whose stored entry answered (None on a miss or for a foreign entry)."""
    similarity: float | None = None
    best_similarity: float | None = None
    false_hit: bool | None = None
    """For semantic hits where both sides have a group: True when the groups differ."""
    missed_equivalent: bool = False
    """A miss although an entry of the same group was stored in the same scope."""
    saving: Saving = field(default_factory=Saving)
    lookup_ms: float | None = None


@dataclass(frozen=True, slots=True)
class LayerFigures:
    """Hits, savings and lookup latency of one layer."""

    hits: int
    hit_rate: float
    prompt_tokens_saved: int
    completion_tokens_saved: int
    usd_saved: float | None
    false_hits: int | None = None
    precision: float | None = None
    latency_ms: dict[str, float] | None = None

    @property
    def tokens_saved(self) -> int:
        return self.prompt_tokens_saved + self.completion_tokens_saved

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "hits": self.hits,
            "hit_rate": self.hit_rate,
            "tokens_saved": self.tokens_saved,
            "prompt_tokens_saved": self.prompt_tokens_saved,
            "completion_tokens_saved": self.completion_tokens_saved,
            "usd_saved": self.usd_saved,
        }
        if self.false_hits is not None or self.precision is not None:
            out |= {"false_hits": self.false_hits, "precision": self.precision}
        if self.latency_ms is not None:
            out["lookup_ms"] = self.latency_ms
        return out


@dataclass(frozen=True, slots=True)
class Figures:
    """Every figure of one replay at one threshold."""

    threshold: float
    requests: int
    exact: LayerFigures
    semantic: LayerFigures
    recall: float | None
    """Correct semantic hits over the lookups that had an equivalent entry to find (needs groups)."""
    unpriced_hits: int
    lookup_ms: dict[str, float] | None = None

    @property
    def hits(self) -> int:
        return self.exact.hits + self.semantic.hits

    @property
    def hit_rate(self) -> float:
        return _rate(self.hits, self.requests)

    @property
    def tokens_saved(self) -> int:
        return self.exact.tokens_saved + self.semantic.tokens_saved

    @property
    def usd_saved(self) -> float | None:
        values = [v for v in (self.exact.usd_saved, self.semantic.usd_saved) if v is not None]
        return sum(values) if values else None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "threshold": self.threshold,
            "requests": self.requests,
            "layers": {"exact": self.exact.to_json(), "semantic": self.semantic.to_json()},
            "hits": self.hits,
            "hit_rate": self.hit_rate,
            "tokens_saved": self.tokens_saved,
            "usd_saved": self.usd_saved,
            "unpriced_hits": self.unpriced_hits,
            "precision": self.semantic.precision,
            "recall": self.recall,
            "false_hits": self.semantic.false_hits,
        }
        if self.lookup_ms is not None:
            out["lookup_ms"] = self.lookup_ms
        return out


def figures(threshold: float, outcomes: Sequence[Outcome], *, labelled: bool) -> Figures:
    """Sum per-request outcomes into per-layer figures."""
    n = len(outcomes)
    semantic = [o for o in outcomes if o.layer == "semantic"]
    judged = [o for o in semantic if o.false_hit is not None]
    false_hits = sum(1 for o in judged if o.false_hit)
    correct = len(judged) - false_hits
    missed = sum(1 for o in outcomes if o.missed_equivalent)
    timed = [o.lookup_ms for o in outcomes if o.lookup_ms is not None]
    return Figures(
        threshold=threshold,
        requests=n,
        exact=_layer([o for o in outcomes if o.layer == "exact"], n),
        semantic=_layer(
            semantic,
            n,
            false_hits=false_hits if labelled else None,
            precision=(correct / len(judged) if judged else None) if labelled else None,
        ),
        recall=(_rate(correct, correct + missed) if correct + missed else None)
        if labelled
        else None,
        unpriced_hits=sum(1 for o in outcomes if o.layer and not o.saving.known),
        lookup_ms=percentiles(timed) if timed else None,
    )


def _layer(
    hits: Sequence[Outcome],
    n: int,
    *,
    false_hits: int | None = None,
    precision: float | None = None,
) -> LayerFigures:
    priced = [o.saving.usd for o in hits if o.saving.usd is not None]
    timed = [o.lookup_ms for o in hits if o.lookup_ms is not None]
    return LayerFigures(
        hits=len(hits),
        hit_rate=_rate(len(hits), n),
        prompt_tokens_saved=sum(o.saving.prompt_tokens for o in hits),
        completion_tokens_saved=sum(o.saving.completion_tokens for o in hits),
        usd_saved=sum(priced) if priced else None,
        false_hits=false_hits,
        precision=precision,
        latency_ms=percentiles(timed) if timed else None,
    )


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of some latencies in ms."""
    p50, p95, p99 = np.percentile(np.asarray(values, dtype=np.float64), [50, 95, 99])
    return {"p50": round(float(p50), 4), "p95": round(float(p95), 4), "p99": round(float(p99), 4)}


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0
