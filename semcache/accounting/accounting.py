"""Accounting: what each lookup saved and cost, counted in process and written to Redis in batches.

The shells report every lookup and store to an :class:`Accounting`; recording is a few dictionary
additions, never a Redis round trip. When a batch is due (every ``flush_every`` seconds or
``flush_events`` events, and on ``stats()`` / ``close()``) the shell runs :meth:`Accounting.write`,
a flow like any in ``semcache.core``: HINCRBY / HINCRBYFLOAT on one hash per namespace and day
(``semcache:stats:<namespace>:<yyyy-mm-dd>``), so every process adds into the same totals.
Latency histograms are stored as bucket counts, so percentiles merge across processes.

What counts where, for one lookup that ended at layer L after ``lookup_ms``:

- a hit saves the stored call: its tokens (stored usage, else counted with tiktoken), its dollars
  (price table; cached prompt tokens at the cached rate), and ``entry.latency_ms - lookup_ms``;
- a miss costs ``lookup_ms`` minus the embedder's time (L's overhead) plus the embedder's time (the
  embedding row's overhead); an API embedder's dollars are overhead on every call.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from semcache.accounting import otel as _otel
from semcache.accounting.prices import PriceTable
from semcache.accounting.stats import BUCKETS_MS, FLOAT_FIELDS, Counters, Stats, add, bucket
from semcache.accounting.tokens import count_tokens, usage_of
from semcache.core.ops import Commands, Flow, Scan
from semcache.core.plan import Plan
from semcache.core.types import LookupResult
from semcache.redis import commands
from semcache.redis.keys import hits_key, stats_key, stats_pattern
from semcache.redis.replies import decode_hash, ranked, text

log = logging.getLogger("semcache")

#: Seconds a day's counters live after their last update.
RETENTION_S = 400 * 86400
#: Per-entry hit counts kept per namespace (the most-hit ones survive trimming).
TOP_ENTRIES = 10_000
#: Most-hit entries a report lists.
TOP_SHOWN = 10


def day_of(timestamp: float) -> str:
    """The UTC day of a timestamp, ``YYYY-MM-DD``."""
    return _day(int(timestamp // 86400))


@functools.lru_cache(maxsize=8)
def _day(day: int) -> str:
    # Every lookup asks for its day; strftime costs more than the rest of its counting.
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))


class Accounting:
    """Per-namespace counters of one cache: recorded in process, flushed to Redis in batches.

    Args:
        embedding_model: the semantic layer's embedder id; ``openai:<model>`` ids (and ids with a
            price override) are API embedders whose tokens and dollars count as overhead.
        prices: the price table.
        clock: wall clock (days of the Redis keys).
        flush_every, flush_events: a batch is due after this many seconds or events.
    """

    def __init__(
        self,
        *,
        embedding_model: str,
        prices: PriceTable,
        clock: Callable[[], float] = time.time,
        flush_every: float = 5.0,
        flush_events: int = 256,
    ) -> None:
        self.prices = prices
        self.embedding_model = api_embedding_model(embedding_model, prices)
        self.clock = clock
        self.flush_every = flush_every
        self.flush_events = flush_events
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], Counters] = {}
        self._entries: dict[tuple[str, str], int] = {}
        self._flushed: dict[str, Counters] = {}
        self._events = 0
        self._last_flush = time.monotonic()

    # --- recording (no I/O) ---------------------------------------------------------------------

    def lookup(self, plan: Plan, result: LookupResult) -> bool:
        """Record a lookup; True when a flush is due."""
        counters = lookup_counters(plan, result, self.prices, self.embedding_model)
        _otel.record(plan.keys.namespace, result, counters)
        entry = (plan.tenant_tag, result.matched_key) if result.hit and result.matched_key else None
        return self._record(plan.keys.namespace, counters, entry)

    def vectors(
        self, namespace: str, model: str, texts: Sequence[str], found: Sequence[Any]
    ) -> bool:
        """Record an embedding-cache lookup of users' own embedding calls; True when a flush is due."""
        return self._record(namespace, vector_counters(model, texts, found, self.prices), None)

    def feedback(self, namespace: str, correct: bool, applied: bool) -> bool:
        """Record a ``cache.feedback`` call; True when a flush is due."""
        counters = {"all:feedback": 1.0, "all:wrong_feedback": float(not correct)}
        counters["all:feedback_applied"] = float(applied)
        return self._record(namespace, counters, None)

    def breaker(self, namespace: str, *, opened: bool) -> None:
        """Record the circuit breaker opening (Redis failing) or closing (Redis back)."""
        name = "all:breaker_opened" if opened else "all:breaker_closed"
        self._record(namespace, {name: 1.0}, None)

    def store(self, plan: Plan, ms: float, stored: bool) -> bool:
        """Record a store that took ``ms``; True when a flush is due."""
        counters = {"all:stores": float(stored), "all:store_ms": ms}
        return self._record(plan.keys.namespace, counters, None)

    def _record(self, namespace: str, counters: Counters, entry: tuple[str, str] | None) -> bool:
        key = (namespace, day_of(self.clock()))
        with self._lock:
            add(self._pending.setdefault(key, {}), counters)
            if entry is not None:
                self._count_entry((namespace, ":".join(entry)))
            self._events += 1
            return self._due()

    def _count_entry(self, hit: tuple[str, str]) -> None:
        if hit in self._entries or len(self._entries) < TOP_ENTRIES:  # bounded between flushes
            self._entries[hit] = self._entries.get(hit, 0) + 1

    def _due(self) -> bool:
        if self._events >= self.flush_events:
            return True
        return self._events > 0 and time.monotonic() - self._last_flush >= self.flush_every

    # --- flows ----------------------------------------------------------------------------------

    def write(self) -> Flow[None]:
        """Send pending counters in one pipeline; on failure they stay pending for the next one."""
        pending, entries = self._take()
        if not pending and not entries:
            return
        try:
            replies = yield Commands(flush_commands(pending, entries))
        except Exception:
            self._restore(pending, entries)
            raise
        with self._lock:
            for (namespace, _), counters in pending.items():
                add(self._flushed.setdefault(namespace, {}), counters)
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            log.warning("semcache: %d stats commands failed: %s", len(failed), failed[0])

    def _take(self) -> tuple[dict[tuple[str, str], Counters], dict[tuple[str, str], int]]:
        with self._lock:
            pending, self._pending = self._pending, {}
            entries, self._entries = self._entries, {}
            self._events = 0
            self._last_flush = time.monotonic()
        return pending, entries

    def _restore(
        self, pending: dict[tuple[str, str], Counters], entries: dict[tuple[str, str], int]
    ) -> None:
        with self._lock:
            for key, counters in pending.items():
                add(self._pending.setdefault(key, {}), counters)
            for hit, n in entries.items():
                self._entries[hit] = self._entries.get(hit, 0) + n

    def read(self, namespace: str, days: int | None = None) -> Flow[Stats]:
        """Every process's counters of a namespace: every day kept, or the last ``days``."""
        if days is None:
            keys = sorted(text(k) for k in (yield Scan(stats_pattern(namespace))))
        else:
            now = self.clock()
            keys = [stats_key(namespace, day_of(now - i * 86400)) for i in range(days)]
        top = commands.top(hits_key(namespace), TOP_SHOWN)
        *replies, best = yield Commands((*(commands.read_counters(k) for k in keys), top))
        counters: Counters = {}
        found: list[str] = []
        for key, reply in zip(keys, replies, strict=True):
            if isinstance(reply, Exception) or not reply:
                continue
            found.append(key.rsplit(":", 1)[-1])
            add(counters, decode_hash(reply))
        return Stats.from_counters(
            namespace, counters, days=found, source="redis", top_entries=ranked(best)
        )

    def local(self, namespace: str) -> Stats:
        """This process's counters of a namespace since the cache was made."""
        with self._lock:
            counters = dict(self._flushed.get(namespace, {}))
            for (ns, _), pending in self._pending.items():
                if ns == namespace:
                    add(counters, pending)
        return Stats.from_counters(namespace, counters, source="process")


# --- what one lookup counts (pure) ----------------------------------------------------------------


def lookup_counters(
    plan: Plan, result: LookupResult, prices: PriceTable, embedding_model: str | None
) -> Counters:
    """The counters one lookup adds (see the module docstring)."""
    if not result.tried:
        return {"all:lookups": 1, "all:skipped": 1}
    shape, final = _shape(result.tried, result.layer, result.hit and result.entry is not None)
    c = dict(shape)
    names = _names(final)
    c[names.bucket[bucket(result.lookup_ms)]] = 1
    c[names.lookup_ms] = result.lookup_ms
    if result.hit and result.entry is not None:
        _hit_counters(c, names, plan, result, prices)  # keys of their own: no sums needed
    else:
        c[names.overhead_ms] = result.lookup_ms - result.embed_ms
    if "semantic" in result.tried:
        c |= embedding_counters(plan, result, prices, embedding_model)
    if result.judge_calls:  # a second opinion's calls are the semantic layer's own cost
        c["semantic:judge_calls"] = result.judge_calls
        c["semantic:overhead_usd"] = c.get("semantic:overhead_usd", 0.0) + result.judge_usd
    return c


@functools.lru_cache(maxsize=64)
def _shape(tried: tuple[str, ...], layer: str | None, hit: bool) -> tuple[Counters, str]:
    """The counts a lookup that tried ``tried`` and ended at ``layer`` adds whatever its figures,
    and the layer its latency counts at (built once per shape: most of a hit's counting)."""
    c: Counters = {"all:lookups": 1}
    for each in tried:
        c[f"{each}:lookups"] = 1
        c[f"{each}:hits" if each == layer else f"{each}:misses"] = 1
    if hit:
        c["all:hits"] = 1
    return c, layer or tried[-1]


class _Names:
    """A layer's counter names, spelled once."""

    def __init__(self, layer: str) -> None:
        self.bucket = [f"{layer}:b{i}" for i in range(len(BUCKETS_MS) + 1)]
        self.lookup_ms, self.overhead_ms = f"{layer}:lookup_ms", f"{layer}:overhead_ms"
        self.latency_saved_ms = f"{layer}:latency_saved_ms"
        self.prompt, self.completion = (
            f"{layer}:prompt_tokens_saved",
            f"{layer}:completion_tokens_saved",
        )
        self.cached, self.counted = f"{layer}:provider_cached_tokens", f"{layer}:counted_hits"
        self.discount, self.usd_saved = f"{layer}:provider_discount_usd", f"{layer}:usd_saved"
        self.unpriced_hits, self.unpriced_tokens = (
            f"{layer}:unpriced_hits",
            f"{layer}:unpriced_tokens",
        )


@functools.lru_cache(maxsize=16)
def _names(layer: str) -> _Names:
    return _Names(layer)


def hit_counters(layer: str, plan: Plan, result: LookupResult, prices: PriceTable) -> Counters:
    """Tokens, dollars and time a hit saved."""
    c: Counters = {}
    _hit_counters(c, _names(layer), plan, result, prices)
    return c


def _hit_counters(
    c: Counters, names: _Names, plan: Plan, result: LookupResult, prices: PriceTable
) -> None:
    """:func:`hit_counters`, added to ``c``."""
    entry = result.entry
    assert entry is not None
    if entry.latency_ms is not None:
        c[names.latency_saved_ms] = entry.latency_ms - result.lookup_ms
    usage = usage_of(plan.canon.body, entry.response, entry.model)
    cost: float | None = None
    if usage is not None:
        c[names.prompt] = usage.prompt
        c[names.completion] = usage.completion
        c[names.cached] = usage.cached
        c[names.counted] = float(usage.counted)
        price = prices.price(entry.model) or prices.price(str(entry.response.get("model") or ""))
        if price is not None:
            cost = price.cost(usage.prompt, usage.completion, usage.cached)
            c[names.discount] = price.cost(usage.prompt, usage.completion) - cost
    cost = entry.cost_usd if cost is None else cost  # the stored upstream cost, when unpriced
    if cost is not None:
        c[names.usd_saved] = cost
    else:
        c[names.unpriced_hits] = 1
        c[names.unpriced_tokens] = usage.prompt + usage.completion if usage else 0
        c[f"unpriced:{entry.model}"] = 1


def embedding_counters(
    plan: Plan, result: LookupResult, prices: PriceTable, embedding_model: str | None
) -> Counters:
    """The embedding cache's row: a hit saves an embedder call, a miss makes one."""
    c: Counters = {"embedding:lookups": 1}
    if result.embedded:
        c |= {
            "embedding:misses": 1, "embedding:embed_calls": 1,
            "embedding:embed_ms": result.embed_ms, "embedding:lookup_ms": result.embed_ms,
            f"embedding:b{bucket(result.embed_ms)}": 1,
        }  # fmt: skip
        if not result.hit:  # on a hit the embedder's time is inside the hit's lookup_ms already
            c["embedding:overhead_ms"] = result.embed_ms
    else:
        c["embedding:hits"] = 1
    if embedding_model is None:  # a local model: no tokens, no dollars
        return c
    tokens = count_tokens(plan.text, embedding_model) or 0
    cost = prices.cost(embedding_model, tokens, 0)
    if result.embedded:
        c["embedding:embed_tokens"] = tokens
        c["embedding:overhead_usd"] = cost or 0.0
    else:
        c["embedding:prompt_tokens_saved"] = tokens
        c["embedding:usd_saved"] = cost or 0.0
    if cost is None:
        c[f"unpriced:{embedding_model}"] = 1
    return c


def vector_counters(
    model: str, texts: Sequence[str], found: Sequence[Any], prices: PriceTable
) -> Counters:
    """Users' embedding calls: each cached vector saves its text's tokens at ``model``'s price."""
    hits = [text for text, vector in zip(texts, found, strict=True) if vector is not None]
    c: Counters = {"embedding:lookups": len(texts), "embedding:upstream_lookups": len(texts)}
    c |= {"embedding:hits": len(hits), "embedding:upstream_hits": len(hits)}
    c["embedding:misses"] = len(texts) - len(hits)
    if not hits:
        return c
    name = model.split("@", 1)[0]
    tokens = sum(count_tokens(text, name) or 0 for text in hits)
    cost = prices.cost(name, tokens, 0)
    c["embedding:prompt_tokens_saved"] = tokens
    if cost is None:
        c |= {"embedding:unpriced_hits": len(hits), "embedding:unpriced_tokens": tokens}
        c[f"unpriced:{name}"] = 1
    else:
        c["embedding:usd_saved"] = cost
    return c


def api_embedding_model(model_id: str, prices: PriceTable) -> str | None:
    """The priced model name of an API embedder; None for a local one (it costs no dollars)."""
    if model_id in prices.overrides:
        return model_id
    if model_id.startswith("openai:"):
        return model_id.removeprefix("openai:").split("@", 1)[0]
    return None


# --- Redis wire (pure) ----------------------------------------------------------------------------


def flush_commands(
    pending: Mapping[tuple[str, str], Counters], entries: Mapping[tuple[str, str], int]
) -> tuple[tuple[Any, ...], ...]:
    """HINCRBY / HINCRBYFLOAT per changed field, then EXPIRE, per namespace and day; ZINCRBY per
    entry hit (trimmed to the :data:`TOP_ENTRIES` most hit)."""
    batch: list[tuple[Any, ...]] = []
    for (namespace, day), counters in pending.items():
        key = stats_key(namespace, day)
        for name, value in sorted(counters.items()):
            if not value:
                continue
            if name.split(":", 1)[-1] in FLOAT_FIELDS:
                batch.append(commands.add_float(key, name, value))
            elif round(value):
                batch.append(commands.add_int(key, name, round(value)))
        batch.append(commands.keep_for(key, RETENTION_S))
    namespaces = {namespace for namespace, _ in entries}
    for (namespace, member), n in entries.items():
        batch.append(commands.count_hit(hits_key(namespace), member, n))
    for namespace in namespaces:
        key = hits_key(namespace)
        batch += [commands.keep_top(key, TOP_ENTRIES), commands.keep_for(key, RETENTION_S)]
    return tuple(batch)
