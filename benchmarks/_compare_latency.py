"""The latency half of ``benchmarks/compare.py``: sequential stores and lookups on one thread,
interleaved across systems (each text goes to every system, in a seeded random order, so the
machine's noise falls on all of them alike), every system at the same cosine threshold so that all of them
see the same hits and misses. Timings are taken around each system's own call."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

from benchmarks import _compare_eval as ev

LATENCY_COSINE = 0.9
ANSWER = "An answer. " * 36


def pct(samples: Sequence[float], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(samples: Sequence[float]) -> dict[str, Any]:
    return {"n": len(samples), "p50_ms": pct(samples, 0.5), "p99_ms": pct(samples, 0.99)}


def shuffled(items: Sequence[Any], rng: random.Random) -> list[Any]:
    """A fresh order per text: each system comes first, last and after each other one alike (a
    fixed rotation would always put the same system after the same one, and with it that one's
    garbage collections and cache misses)."""
    out = list(items)
    rng.shuffle(out)
    return out


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = fn(*args)
    return (time.perf_counter() - start) * 1000, value


def run_latency(systems: Sequence[Any], stored: Sequence[str], warmup: Sequence[str],
                probes: dict[str, Sequence[str]]) -> dict[str, Any]:  # fmt: skip
    names = [s.name for s in systems]
    rng = random.Random(5)
    scope = "lat"
    for s in systems:  # lazy loading, index creation, first connections: outside the timings
        for text in warmup:
            s.store(text, ANSWER, scope)
            s.lookup(text + " (warm-up)", scope, s.scale.from_cosine(LATENCY_COSINE))
    stores: dict[str, list[float]] = {n: [] for n in names}
    for text in stored:
        for s in shuffled(systems, rng):
            stores[s.name].append(timed(s.store, text, ANSWER, scope)[0])
    buckets: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    hits: dict[str, dict[str, int]] = {n: {} for n in names}
    for kind, texts in probes.items():
        for text in texts:
            for s in shuffled(systems, rng):
                ms, found = timed(s.lookup, text, scope, s.scale.from_cosine(LATENCY_COSINE))
                bucket = f"hit_{kind}" if found.answer is not None else "miss"
                buckets[s.name].setdefault(bucket, []).append(ms)
                hits[s.name][kind] = hits[s.name].get(kind, 0) + (found.answer is not None)
    out = {}
    for s in systems:
        out[s.name] = {
            "store_per_s": len(stored) / (sum(stores[s.name]) / 1000),
            "store": summary(stores[s.name]),
            **{b: summary(v) for b, v in sorted(buckets[s.name].items())},
            "hit_rate": {k: hits[s.name].get(k, 0) / len(v) for k, v in probes.items()},
        }
        if hasattr(s, "held"):
            out[s.name]["entries_held"] = s.held()
        print_latency_row(s.name, out[s.name])
    return out


def print_latency_row(name: str, row: dict[str, Any]) -> None:
    def cell(key: str) -> str:
        r = row.get(key)
        return "-" if not r else f"{r['p50_ms']:.2f}/{r['p99_ms']:.2f} ms (n={r['n']})"

    print(f"  {name:<28} store {row['store_per_s']:8.1f}/s  repeat {cell('hit_repeat')}  "
          f"paraphrase {cell('hit_paraphrase')}  miss {cell('miss')}  hit rates {row['hit_rate']}")  # fmt: skip


def latency_texts(entries: int, probes: int, paws: ev.Dataset) -> dict[str, Any]:
    from benchmarks.bench_latency import questions

    texts = questions(entries + probes + 20, seed=11)
    stored, warmup = texts[:entries], texts[entries + probes :]
    unrelated = list(dict.fromkeys(g.query for g in paws.groups))[:probes]
    return {
        "stored": stored,
        "warmup": warmup,
        "probes": {
            "repeat": stored[:probes],
            "paraphrase": [
                f"Quick question: {t[0].lower()}{t[1:]}" for t in stored[probes : 2 * probes]
            ],
            "unrelated": unrelated,
        },
    }
