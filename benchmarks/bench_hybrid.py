"""The hybrid plan of scoped KNN searches: RediSearch's own choice against the one the cache makes.

A lookup's KNN search is filtered by its scope tag, and RediSearch either scans the scope's
documents (``ADHOC_BF``) or walks the HNSW graph (``BATCHES``); ``semcache/core/hybrid.py`` counts
the scope and the index now and then and names ``BATCHES`` when the scope is big and a real share of
the index. This measures, for each index size, on one embedded Redis:

- bare searches (the cache's own KNN command, sent with redis-py): RediSearch's choice, ``BATCHES``
  and ``ADHOC_BF``, and the default range search at the cut-off, for a scope holding most of the
  index and for a small tenant (0.5%);
- ``Cache.lookup`` with the vector given (so nothing is embedded), with the cache's plans on and
  off and a cache of the default range search on the same namespace, interleaved: misses (real
  embeddings of unrelated questions) and near hits (a stored vector plus noise, cosine ~0.99). The decision is a plain cut-off: the search is what is measured. The
  caches search by KNN (``CacheConfig(search="knn")``); the default range search has no plan.

Data: vectors drawn around real all-MiniLM-L6-v2 embeddings of 2,000 generated support questions
(``benchmarks/_data.py``), loaded through ``Cache.store_many``.

Usage: python benchmarks/bench_hybrid.py [--sizes 5000,20000,100000] [--rounds 3]
(writes benchmarks/results/hybrid.json with the load average)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks._data import drawn, near, support_questions
from benchmarks._results import Run
from benchmarks.bench_scale import wait_indexed
from semcache.redis.commands import RANGE_EPSILON, knn
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "hybrid.json"
SMALL_SHARE = 0.005
UNRELATED = [
    "What is the capital of France?", "Write a haiku about rain", "How tall is Mount Everest?",
    "Best recipe for banana bread", "Explain quantum entanglement simply",
    "Who won the 1998 world cup?", "Translate good morning to Japanese", "What is 17 times 23?",
    "Recommend a science fiction novel", "How do vaccines work?", "Why is the sky blue?",
    "What should I plant in my garden in April?", "How many bones are in the human body?",
    "Who painted the Mona Lisa?", "What is the speed of light?", "Suggest a name for my cat",
]  # fmt: skip


def chat(text: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}


def given_only(dimension: int) -> semcache.CallableEmbedder:
    def refuse(texts: list[str]) -> np.ndarray:
        raise RuntimeError("every vector is given here")

    return semcache.CallableEmbedder(refuse, model_id="bench-hybrid", dimension=dimension)


def p50(times: list[float]) -> float:
    return round(statistics.median(times), 4)


def load(cache: semcache.Cache, vectors: np.ndarray, tenant: str, start: int) -> float:
    """Store every vector under ``tenant``; entries/s."""
    began = time.perf_counter()
    for lo in range(0, len(vectors), 2000):
        part = vectors[lo : lo + 2000]
        pairs = [(chat(f"stored {tenant} {start + lo + i}"),
                  {"choices": [{"message": {"role": "assistant", "content": f"answer {lo + i}"}}]})
                 for i in range(len(part))]  # fmt: skip
        assert cache.store_many(pairs, tenant=tenant, vectors=part) == len(part)
    return len(vectors) / (time.perf_counter() - began)


def bare(client: redis.Redis, cache: semcache.Cache, ranged: semcache.Cache, tenant: str,
         queries: np.ndarray, rounds: int) -> dict[str, float]:  # fmt: skip
    """p50 ms of the cache's KNN command under each hybrid plan, and of ``ranged``'s range
    search at its cut-off, sent bare."""
    plan = cache.plan(chat("probe"), tenant=tenant)
    fields = cache.decision.return_fields
    names = ("redisearch_choice", "BATCHES", "ADHOC_BF", "range")
    times: dict[str, list[float]] = {name: [] for name in names}
    radius = ranged._core.semantic.radius(ranged.config.threshold)
    for _ in range(rounds):
        for q in queries:
            blob = q.astype(np.float32).tobytes()
            for name in times:
                policy = None if name in ("redisearch_choice", "range") else name
                ranged = {"radius": radius, "epsilon": RANGE_EPSILON} if name == "range" else {}
                command = list(knn(plan.keys, vector=blob, scope=plan.scope, k=4, ef=None,
                                   fields=fields, policy=policy, **ranged))  # fmt: skip
                start = time.perf_counter()
                client.execute_command(*command)
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: p50(t) for name, t in times.items()}


def lookups(cache: semcache.Cache, ranged: semcache.Cache, tenant: str,
            queries: dict[str, np.ndarray], rounds: int) -> dict[str, Any]:  # fmt: skip
    """p50 ms of ``Cache.lookup(vector=...)``, interleaved: the KNN cache with its plans on and
    off, and ``ranged`` (the same namespace, the default range search)."""
    semantic = cache._core.semantic
    plans = semantic.plans
    out: dict[str, Any] = {}
    names = ("plans_on", "plans_off", "range")
    for kind, rows in queries.items():
        times: dict[str, list[float]] = {name: [] for name in names}
        layers: dict[str, list[Any]] = {name: [] for name in names}
        for r in range(rounds):
            order = names if r % 2 == 0 else names[::-1]
            for i, q in enumerate(rows):
                for name in order:
                    semantic.plans = plans if name == "plans_on" else None
                    asking = ranged if name == "range" else cache
                    start = time.perf_counter()
                    result = asking.lookup(chat(f"{kind} {tenant} {i} {r} {name}"), tenant=tenant,
                                           vector=q)  # fmt: skip
                    times[name].append((time.perf_counter() - start) * 1000)
                    layers[name].append(result.layer)
        semantic.plans = plans
        out[kind] = {name: p50(t) for name, t in times.items()}
        out[kind]["on_to_off"] = round(out[kind]["plans_on"] / out[kind]["plans_off"], 3)
        out[kind]["range_to_on"] = round(out[kind]["range"] / out[kind]["plans_on"], 3)
        out[kind]["hit_rate"] = {n: got.count("semantic") / len(got) for n, got in layers.items()}
    index = cache.plan(chat("probe"), tenant=tenant).keys.index_of(0)
    scope = cache.plan(chat("probe"), tenant=tenant).scope
    out["plan_chosen"] = plans.plan(index, scope) if plans is not None else None
    return out


def run_size(url: str, n: int, centres: np.ndarray, unrelated: np.ndarray,
             rounds: int) -> dict[str, Any]:  # fmt: skip
    rng = np.random.default_rng(n)
    small = max(1, int(n * SMALL_SHARE))
    vectors = drawn(centres, n, rng)
    # the KNN search (a range search, the default, has no hybrid plan)
    config = semcache.CacheConfig(namespace=f"hybrid-{n}", decision=semcache.ThresholdDecision(),
                                  search="knn")  # fmt: skip
    row: dict[str, Any] = {"entries": n, "small_tenant_entries": small}
    embedder = given_only(centres.shape[1])
    with (
        semcache.Cache(redis_url=url, embedder=embedder, config=config) as cache,
        semcache.Cache(redis_url=url, embedder=embedder,
                       config=dataclasses.replace(config, search="range")) as ranged,
    ):  # fmt: skip
        row["load_per_s"] = round(load(cache, vectors[: n - small], "big", 0), 1)
        load(cache, vectors[n - small :], "small", n)
        client = redis.Redis.from_url(url)
        wait_indexed(client, cache.plan(chat("probe")).keys.index_of(0))
        for tenant, rows in (("big", vectors[: n - small]), ("small", vectors[n - small :])):
            hits = near(rows[rng.integers(0, len(rows), 16)], rng, 0.004)
            cache.lookup(chat(f"warm {tenant}"), tenant=tenant, vector=hits[0])  # counts once
            ranged.lookup(chat(f"warm {tenant} ranged"), tenant=tenant, vector=hits[0])
            row[tenant] = {
                "bare_miss_ms": bare(client, cache, ranged, tenant, unrelated, rounds),
                "bare_hit_ms": bare(client, cache, ranged, tenant, hits, rounds),
                "lookup_ms": lookups(
                    cache, ranged, tenant, {"miss": unrelated, "hit": hits}, rounds
                ),
            }
        cache.flush()
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,20000,100000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    from semcache.embedding.default import default_local_embedder

    embedder = default_local_embedder()
    centres = embedder.embed(support_questions(2000))
    unrelated = embedder.embed(UNRELATED)
    run = Run()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        for n in (int(s) for s in args.sizes.split(",")):
            rows.append(run_size(server.url, n, centres, unrelated, args.rounds))
            print(json.dumps(rows[-1]), flush=True)
    run.write(Path(args.out), sizes=rows)


if __name__ == "__main__":
    main()
