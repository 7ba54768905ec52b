"""An async cache's exact hits while another task's lookups run the verifier's model.

The learned verifier runs all-MiniLM-L6-v2 on a pair's texts it has not seen (milliseconds). In the
async cache that run is a local ``Call`` on a worker thread (``semcache/decision/decide.py``); run
in the event loop, it held every other task for its duration. This measures both, interleaved in
one run on one embedded Redis, with the default decision (guard + verifier) and the default local
embedder:

- one task looks up paraphrases of stored entries, each query and each candidate new to the
  process (its token rows forgotten), so a lookup in the verifier's band runs the model (the share
  verified is reported);
- another task looks up a stored prompt again and again (exact hits) and times each.

"in the loop" is the earlier behaviour, forced by telling the decision every score is in memory.
Reported: p50 / p99 of the exact hits, and of the verified lookups, per mode.

Usage: python benchmarks/bench_async_verifier.py [--entries 120] [--rounds 2]
(writes benchmarks/results/async_verifier.json with the load average)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks._data import support_questions
from semcache.core.lru import LRU
from semcache.decision.verifier import Verifier
from semcache.embedding import onnx_runtime
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "async_verifier.json"
MODES = ("worker_thread", "in_the_loop")
PREFIXES = ("Quick question:", "Just wondering,", "Hey there,", "Please tell me,", "Hi,", "Hello,")


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def answer(text: str) -> dict[str, Any]:
    return {"choices": [{"message": {"role": "assistant", "content": text}}],
            "model": "gpt-4o-mini", "usage": {"prompt_tokens": 12, "completion_tokens": 40}}  # fmt: skip


def forget_token_rows() -> None:
    """The shared model forgets the texts it ran (a process that stored none of the entries)."""
    for model in onnx_runtime._SHARED.values():
        model.recent = LRU(onnx_runtime.RECENT)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


async def one_round(
    cache: semcache.AsyncCache, probes: list[str], mode: str, r: int
) -> dict[str, Any]:
    inline = mode == "in_the_loop"
    original = Verifier.in_memory
    if inline:
        Verifier.in_memory = lambda self, q, c: True  # type: ignore[method-assign]
    forget_token_rows()
    exact_ms: list[float] = []
    verified_ms: list[float] = []
    reasons: list[Any] = []
    done = asyncio.Event()

    async def exact_hits() -> None:
        while not done.is_set():
            start = time.perf_counter()
            result = await cache.lookup(chat("the repeated prompt"))
            exact_ms.append((time.perf_counter() - start) * 1000)
            assert result.layer == "exact"
            await asyncio.sleep(0)

    async def verified() -> None:
        for text in probes:
            start = time.perf_counter()
            lead = PREFIXES[(2 * r + MODES.index(mode)) % len(PREFIXES)]
            result = await cache.lookup(chat(f"{lead} {text[0].lower()}{text[1:]}"))
            verified_ms.append((time.perf_counter() - start) * 1000)
            reasons.append("verifier" in dict(result.checks))
        done.set()

    try:
        await asyncio.gather(exact_hits(), verified())
    finally:
        Verifier.in_memory = original  # type: ignore[method-assign]
    return {"exact": exact_ms, "verified": verified_ms, "verified_outcomes": reasons}


async def run(url: str, entries: int, rounds: int) -> dict[str, Any]:
    stored = support_questions(entries, seed=11)
    async with semcache.AsyncCache(redis_url=url, namespace="async-verifier") as cache:
        await cache.store(chat("the repeated prompt"), answer("the repeated answer"))
        for text in stored:
            await cache.store(chat(text), answer(f"answer to {text}"))
        await cache.lookup(chat("the repeated prompt"))
        figures: dict[str, dict[str, list[Any]]] = {m: {} for m in MODES}
        for r in range(rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                got = await one_round(cache, stored, mode, r)
                for k, v in got.items():
                    figures[mode].setdefault(k, []).extend(v)
        await cache.delete_namespace()
    out: dict[str, Any] = {}
    for mode, f in figures.items():
        outcomes = f["verified_outcomes"]
        out[mode] = {
            "exact_hit_p50_ms": pct(f["exact"], 0.5), "exact_hit_p99_ms": pct(f["exact"], 0.99),
            "exact_hit_max_ms": round(max(f["exact"]), 3), "exact_hits": len(f["exact"]),
            "verified_p50_ms": pct(f["verified"], 0.5),
            "verified_p99_ms": pct(f["verified"], 0.99),
            "verified_share": round(sum(outcomes) / len(outcomes), 3),
            "verified_lookups": len(f["verified"]),
        }  # fmt: skip
    w, i = out["worker_thread"], out["in_the_loop"]
    out["ratios_worker_thread_to_in_the_loop"] = {
        k: round(w[k] / i[k], 3)
        for k in ("exact_hit_p50_ms", "exact_hit_p99_ms", "verified_p50_ms")
    }
    out["exact_hits_per_verified_lookup"] = {
        m: round(out[m]["exact_hits"] / out[m]["verified_lookups"], 2) for m in MODES
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    load = [round(os.getloadavg()[0], 2)]
    began = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        figures = asyncio.run(run(server.url, args.entries, args.rounds))
    load.append(round(os.getloadavg()[0], 2))
    result = {"date": time.strftime("%Y-%m-%d %H:%M"), "load_average_1min": load,
              "seconds": round(time.perf_counter() - began, 1), "entries": args.entries,
              "rounds": args.rounds, **figures}  # fmt: skip
    print(json.dumps(result, indent=1))
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
