"""Hit throughput at 1 and 8 threads and 32 asyncio tasks, against as many doing bare commands.

In one run, on the embedded Redis (unix socket) and the default local embedder:
- exact hits (``cache.lookup`` of stored prompts) against bare redis-py GETs of the same keys;
- semantic hits with the vector in process memory (paraphrases of stored prompts, looked up once
  before) against bare FT.SEARCH of the same KNN command semcache sends.

Each pair is measured in turn, the bare commands and semcache alternating, ``--rounds`` times for
``--seconds`` each; the ratio is of the median rates. Threads share one ``Cache`` (one
``redis.Redis``), tasks one ``AsyncCache`` (one ``redis.asyncio.Redis``), as an application would.

Usage: python benchmarks/bench_throughput.py [--seconds S] [--rounds N]
(writes benchmarks/results/throughput.json with the load average)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
import redis.asyncio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks.bench_latency import ANSWER, chat, paraphrase, questions
from semcache.embedding.default import default_local_embedder
from semcache.redis.commands import knn
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "throughput.json"
THREADS = (1, 8)
TASKS = 32

Work = Callable[[int], Any]


def threaded(n: int, work: Work, seconds: float) -> float:
    """Operations per second of ``n`` threads each calling ``work(i)`` for ``seconds``."""
    counts = [0] * n
    start = threading.Barrier(n + 1)
    deadline = [0.0]

    def worker(slot: int) -> None:
        start.wait()
        done = 0
        while time.perf_counter() < deadline[0]:
            work(slot * 7919 + done)
            done += 1
        counts[slot] = done

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for thread in pool:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in pool:
        thread.join()
    return sum(counts) / (time.perf_counter() - began)


async def tasked(n: int, work: Callable[[int], Awaitable[Any]], seconds: float) -> float:
    """Operations per second of ``n`` asyncio tasks each awaiting ``work(i)`` for ``seconds``."""
    deadline = time.perf_counter() + seconds
    began = time.perf_counter()

    async def worker(slot: int) -> int:
        done = 0
        while time.perf_counter() < deadline:
            await work(slot * 7919 + done)
            done += 1
        return done

    counts = await asyncio.gather(*(worker(i) for i in range(n)))
    return sum(counts) / (time.perf_counter() - began)


def searches(cache: semcache.Cache, texts: list[str]) -> list[tuple[Any, ...]]:
    """The KNN command semcache sends for each text (its vector in the cache's memory)."""
    out = []
    for text in texts:
        plan = cache.plan(chat(text))
        vector = cache._core.embeddings.recall(plan.text)
        assert vector is not None
        out.append(knn(plan.keys, vector=vector.tobytes(), scope=plan.scope,
                       k=cache.config.top_k, ef=None, fields=cache.decision.return_fields))  # fmt: skip
    return out


def compare(measure: Callable[[str], float], rounds: int) -> dict[str, Any]:
    """Median ops/s of ``bare`` and ``semcache`` measured alternately, and their ratio."""
    rates: dict[str, list[float]] = {"bare": [], "semcache": []}
    for i in range(rounds):
        for name in ("bare", "semcache") if i % 2 == 0 else ("semcache", "bare"):
            rates[name].append(measure(name))
    row: dict[str, Any] = {f"{n}_ops_per_s": statistics.median(r) for n, r in rates.items()}
    row["ratio"] = row["semcache_ops_per_s"] / row["bare_ops_per_s"]
    row["rounds"] = rates
    return row


def sync_rows(url: str, embedder: Any, stored: list[str], args: Any) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    rows: dict[str, Any] = {}
    config = semcache.CacheConfig(namespace="bench-tp", decision=decision(args))
    with semcache.Cache(redis_url=url, embedder=embedder, config=config) as cache:
        keys = [cache.plan(chat(t)).exact_key for t in stored]
        probes = [paraphrase(t) for t in stored]
        hits = [cache.lookup(chat(p)).layer for p in probes]  # vectors in memory from now on
        knns = searches(cache, probes)
        works: dict[str, dict[str, Work]] = {
            "exact": {
                "bare": lambda i: client.get(keys[i % len(keys)]),
                "semcache": lambda i: cache.lookup(chat(stored[i % len(stored)])),
            },
            "semantic": {
                "bare": lambda i: client.execute_command(*knns[i % len(knns)]),
                "semcache": lambda i: cache.lookup(chat(probes[i % len(probes)])),
            },
        }
        check = [cache.lookup(chat(p)).layer for p in probes[:50]]
        rows["semantic_hit_rate"] = check.count("semantic") / len(check)
        rows["semantic_hit_rate_first_pass"] = hits.count("semantic") / len(hits)
        for kind, pair in works.items():
            for n in THREADS:
                row = compare(lambda name, p=pair, k=n: threaded(k, p[name], args.seconds),
                              args.rounds)  # fmt: skip
                rows[f"{kind}_{n}_threads"] = row
                print(f"  {kind:<8} {n:>2} threads: semcache {row['semcache_ops_per_s']:8.0f}/s  "
                      f"bare {row['bare_ops_per_s']:8.0f}/s  ratio {row['ratio']:.2f}")  # fmt: skip
        cache.flush()
    client.close()
    return rows


async def async_rows(url: str, embedder: Any, stored: list[str], args: Any) -> dict[str, Any]:
    client = redis.asyncio.Redis.from_url(url)
    rows: dict[str, Any] = {}
    config = semcache.CacheConfig(namespace="bench-tpa", decision=decision(args))
    async with semcache.AsyncCache(redis_url=url, embedder=embedder, config=config) as ac:
        keys = [ac.plan(chat(t)).exact_key for t in stored]
        probes = [paraphrase(t) for t in stored]
        for p in probes:
            await ac.lookup(chat(p))  # vectors in memory from now on
        knns = searches(ac, probes)  # type: ignore[arg-type]  # only reads plans and memory
        works = {
            "exact": {
                "bare": lambda i: client.get(keys[i % len(keys)]),
                "semcache": lambda i: ac.lookup(chat(stored[i % len(stored)])),
            },
            "semantic": {
                "bare": lambda i: client.execute_command(*knns[i % len(knns)]),
                "semcache": lambda i: ac.lookup(chat(probes[i % len(probes)])),
            },
        }
        for kind, pair in works.items():
            rates: dict[str, list[float]] = {"bare": [], "semcache": []}
            for i in range(args.rounds):
                for name in ("bare", "semcache") if i % 2 == 0 else ("semcache", "bare"):
                    rates[name].append(await tasked(TASKS, pair[name], args.seconds))
            row: dict[str, Any] = {f"{n}_ops_per_s": statistics.median(r) for n, r in rates.items()}
            row["ratio"] = row["semcache_ops_per_s"] / row["bare_ops_per_s"]
            row["rounds"] = rates
            rows[f"{kind}_{TASKS}_tasks"] = row
            print(f"  {kind:<8} {TASKS} tasks:   semcache {row['semcache_ops_per_s']:8.0f}/s  "
                  f"bare {row['bare_ops_per_s']:8.0f}/s  ratio {row['ratio']:.2f}")  # fmt: skip
        await ac.flush()
    await client.aclose()
    return rows


def decision(args: Any) -> Any:
    """The default decision (guard and verifier), or with ``--guard-only`` the guard alone."""
    return semcache.GuardedDecision(guard=semcache.Guard()) if args.guard_only else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--guard-only", action="store_true",
                        help="decide with the guard alone (the lookup machinery without the "
                        "verifier); writes results/throughput_guard_only.json")  # fmt: skip
    parser.add_argument("--seconds", type=float, default=2.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="per pair (odd: a clean median)")
    args = parser.parse_args()
    embedder = semcache.Batching(default_local_embedder())
    stored = questions(200)
    load = [round(os.getloadavg()[0], 2)]
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        with semcache.Cache(redis_url=server.url, embedder=embedder, namespace="bench-tp") as c:
            c.store_many([(chat(t), ANSWER) for t in stored])
        with semcache.Cache(redis_url=server.url, embedder=embedder, namespace="bench-tpa") as c:
            c.store_many([(chat(t), ANSWER) for t in stored])
        rows = sync_rows(server.url, embedder, stored, args)
        rows |= asyncio.run(async_rows(server.url, embedder, stored, args))
    load.append(round(os.getloadavg()[0], 2))
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}, "
        f"{os.cpu_count()} cores",
        "load_average_1min": load,
        "seconds_per_measurement": args.seconds,
        "decision": "guard alone" if args.guard_only else "default (guard + verifier)",
        **rows,
    }
    out = RESULTS.with_name("throughput_guard_only.json") if args.guard_only else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"load average {load}; wrote {out}")


if __name__ == "__main__":
    main()
