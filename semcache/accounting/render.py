"""Renderings of :class:`semcache.accounting.stats.Stats`: Prometheus text exposition and a terminal table.

No I/O here.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol

from semcache.accounting.counters import BUCKETS_MS, LayerStats


class Stats(Protocol):
    """What a rendering reads of :class:`semcache.Stats` (which imports this module)."""

    @property
    def namespace(self) -> str: ...
    @property
    def layers(self) -> Mapping[str, LayerStats]: ...
    @property
    def lookups(self) -> int: ...
    @property
    def hits(self) -> int: ...
    @property
    def skipped(self) -> int: ...
    @property
    def stores(self) -> int: ...
    @property
    def store_ms(self) -> float: ...
    @property
    def unpriced_models(self) -> tuple[str, ...]: ...
    @property
    def days(self) -> tuple[str, ...]: ...
    @property
    def source(self) -> str: ...
    @property
    def feedback(self) -> int: ...
    @property
    def wrong_feedback(self) -> int: ...
    @property
    def breaker_opened(self) -> int: ...
    @property
    def hit_rate(self) -> float: ...
    @property
    def usd_saved(self) -> float: ...
    @property
    def overhead_usd(self) -> float: ...
    @property
    def overhead_ms(self) -> float: ...
    @property
    def net_usd_saved(self) -> float: ...
    @property
    def net_ms_saved(self) -> float: ...


#: (name, type, help, value of a layer) of the per-layer metrics, labelled namespace and layer.
_LAYER_METRICS: tuple[tuple[str, str, str, Callable[[LayerStats], float]], ...] = (
    ("semcache_lookups_total", "counter", "Lookups that consulted the layer.",
     lambda s: s.lookups),
    ("semcache_hits_total", "counter", "Lookups the layer answered.", lambda s: s.hits),
    ("semcache_misses_total", "counter", "Lookups the layer did not answer.", lambda s: s.misses),
    ("semcache_hit_ratio", "gauge", "Hits per lookup.", lambda s: s.hit_rate),
    ("semcache_prompt_tokens_saved_total", "counter", "Prompt tokens not sent upstream.",
     lambda s: s.prompt_tokens_saved),
    ("semcache_completion_tokens_saved_total", "counter", "Completion tokens not generated.",
     lambda s: s.completion_tokens_saved),
    ("semcache_provider_cached_tokens_total", "counter",
     "Prompt tokens of answered calls the provider had already served from its prompt cache.",
     lambda s: s.provider_cached_tokens),
    ("semcache_saved_usd_total", "counter", "Dollars not spent upstream (gross).",
     lambda s: s.usd_saved),
    ("semcache_provider_discount_usd_total", "counter",
     "The provider's own prompt-cache discount on answered calls (not claimed as saved).",
     lambda s: s.provider_discount_usd),
    ("semcache_unpriced_hits_total", "counter", "Hits for models without a known price.",
     lambda s: s.unpriced_hits),
    ("semcache_latency_saved_seconds", "gauge",
     "Stored upstream latency minus lookup latency, summed over hits.",
     lambda s: s.latency_saved_ms / 1000),
    ("semcache_overhead_usd_total", "counter", "Dollars the layer cost (API embedding calls).",
     lambda s: s.overhead_usd),
    ("semcache_overhead_seconds_total", "counter", "Time the layer cost on misses.",
     lambda s: s.overhead_ms / 1000),
    ("semcache_net_saved_usd", "gauge", "Dollars saved minus dollars cost.",
     lambda s: s.net_usd_saved),
    ("semcache_embedding_calls_total", "counter", "Embedder calls.", lambda s: s.embed_calls),
    ("semcache_embedding_tokens_total", "counter", "Tokens sent to an API embedder.",
     lambda s: s.embed_tokens),
    ("semcache_judge_calls_total", "counter", "Second-opinion (judge) calls of the decision stage.",
     lambda s: s.judge_calls),
)  # fmt: skip


def prometheus(stats: Stats) -> str:
    """Every metric, one HELP/TYPE block each, labelled ``namespace`` (and ``layer``)."""
    ns = _escape(stats.namespace)
    lines: list[str] = []
    for name, kind, help_text, value in _LAYER_METRICS:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for layer in stats.layers.values():
            lines.append(f'{name}{{namespace="{ns}",layer="{layer.name}"}} {_num(value(layer))}')
    lines += _histogram(stats)
    for name, help_text, total in (
        ("semcache_skipped_lookups_total", "Lookups that consulted no layer.", stats.skipped),
        ("semcache_stores_total", "Responses stored.", stats.stores),
        ("semcache_store_seconds_total", "Time spent storing.", stats.store_ms / 1000),
        ("semcache_feedback_total", "cache.feedback calls.", stats.feedback),
        (
            "semcache_breaker_opened_total",
            "Times the cache stepped aside (Redis failing).",
            stats.breaker_opened,
        ),
        (
            "semcache_wrong_feedback_total",
            "Feedback saying an answer was wrong.",
            stats.wrong_feedback,
        ),
    ):
        kind = "counter"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines.append(f'{name}{{namespace="{ns}"}} {_num(total)}')
    return "\n".join(lines) + "\n"


def _histogram(stats: Stats) -> list[str]:
    name = "semcache_lookup_duration_seconds"
    lines = [
        f"# HELP {name} Lookup latency by the layer a lookup ended at (embedding: embedder).",
        f"# TYPE {name} histogram",
    ]
    ns = _escape(stats.namespace)
    for layer in stats.layers.values():
        labels = f'namespace="{ns}",layer="{layer.name}"'
        cumulative = 0
        for bound, count in zip(BUCKETS_MS, layer.buckets, strict=True):
            cumulative += count
            le = "+Inf" if math.isinf(bound) else _num(bound / 1000)
            lines.append(f'{name}_bucket{{{labels},le="{le}"}} {cumulative}')
        lines.append(f"{name}_sum{{{labels}}} {_num(layer.lookup_ms / 1000)}")
        lines.append(f"{name}_count{{{labels}}} {cumulative}")
    return lines


def _num(value: float) -> str:
    return repr(float(value))


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


# --- terminal table ---------------------------------------------------------------------------

_COLUMNS = ("layer", "lookups", "hits", "hit rate", "tokens saved", "$ saved", "ms saved",
            "p50 ms", "p95 ms", "p99 ms", "overhead $", "overhead ms", "net $")  # fmt: skip


def table(stats: Stats) -> str:
    """Per-layer rows, then the totals and what could not be priced."""
    rows = [_COLUMNS, *(_row(layer) for layer in stats.layers.values())]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    out = [_line(row, widths) for row in rows]
    days = f"{stats.days[0]}..{stats.days[-1]}" if stats.days else "this process"
    out += [
        "",
        f"namespace {stats.namespace} ({stats.source}, {days}): {stats.lookups} lookups, "
        f"{stats.hits} hits ({stats.hit_rate:.1%}), {stats.skipped} skipped, {stats.stores} stores",
        f"saved ${_usd(stats.usd_saved)} gross, overhead ${_usd(stats.overhead_usd)} and "
        f"{stats.overhead_ms:.1f} ms, net ${_usd(stats.net_usd_saved)} and "
        f"{stats.net_ms_saved:.1f} ms",
    ]
    if stats.unpriced_models:
        out.append("unpriced (counted in tokens only): " + ", ".join(stats.unpriced_models))
    return "\n".join(out)


def _line(row: tuple[str, ...], widths: list[int]) -> str:
    cells = [
        row[0].ljust(widths[0]),
        *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
    ]
    return "  ".join(cells).rstrip()


def _row(layer: LayerStats) -> tuple[str, ...]:
    return (
        layer.name, str(layer.lookups), str(layer.hits), f"{layer.hit_rate:.1%}",
        str(layer.tokens_saved), _usd(layer.usd_saved), f"{layer.latency_saved_ms:.1f}",
        _ms(layer.p50_ms), _ms(layer.p95_ms), _ms(layer.p99_ms),
        _usd(layer.overhead_usd), f"{layer.overhead_ms:.1f}", _usd(layer.net_usd_saved),
    )  # fmt: skip


def _usd(value: float) -> str:
    return f"{value:.8f}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"
