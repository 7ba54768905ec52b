"""The semantic layer at 10k, 100k and 1M entries: load rate, memory, lookup latency and recall.

In one run, for each size, on a fresh embedded Redis (unix socket) per index variant:
- load: every entry goes through ``Cache.store_many`` in batches (the path ``semcache warm``
  takes): embedding-cache reads and writes, the exact entry, the semantic document, pipelined;
- memory: ``used_memory`` growth per entry (exact + semantic document + embedding cache + index),
  and the vector index alone (``FT.INFO vector_index_sz_mb``);
- lookups: p50/p99 of the KNN query the cache sends (top_k=4, scope filter, the cache's fields,
  the hybrid plan it names for a scope this big: ``semcache/core/hybrid.py``)
  and recall@1 against brute force (numpy, float32), at several EF_RUNTIME values for HNSW,
  and for FLAT (an extra FLAT index over the same documents).
- FLOAT16 (RediSearch >= 2.10 supports it): the same, loaded again with float16 vectors.

Data (``benchmarks/_data.py``). Up to 100k: real all-MiniLM-L6-v2 embeddings of 100,000 generated
support questions (embedding them takes ~6 minutes here; kept in the temp dir between runs). 1M:
those 100,000 plus 900,000 vectors drawn around them (``--data interpolated``, the default: points
between real neighbours, so they cluster like real data; ``--data isotropic``: Gaussian noise in
every dimension, a hub-and-spoke stress case). Every request shares one scope (the worst case for
the scope filter: the whole index is in scope). Queries are stored entries plus a small
perturbation (cosine ~0.988 to their source): the near-duplicates a cache serves. The load rate
excludes embedding time (reported separately as ``embed_per_s``).

Usage: python benchmarks/bench_scale.py [--sizes 10000,100000,1000000] [--float16-max 100000]
       [--m 32,64] [--data interpolated|isotropic] [--out FILE]   (writes benchmarks/results/scale.json)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks._data import drawn, near, real_embeddings
from benchmarks.bench_latency import ANSWER, chat, summary
from semcache.core import hybrid
from semcache.core.types import IndexParams
from semcache.redis.commands import create_index, knn
from semcache.redis.keys import Keys
from semcache.redis.replies import parse_search
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "scale.json"
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
EFS = (16, 32, 64, 128, 256)
BATCH = 2000


def texts_for(n: int, real: list[str]) -> list[str]:
    """n distinct request texts: the real questions first, then numbered variants of them."""
    return real[:n] + [f"{real[i % len(real)]} (ticket {i})" for i in range(len(real), n)]


def table_embedder(texts: list[str], vectors: np.ndarray) -> semcache.CallableEmbedder:
    """An embedder that answers from a precomputed table (real or drawn-around-real vectors)."""
    row = {text: i for i, text in enumerate(texts)}
    return semcache.CallableEmbedder(
        lambda batch: vectors[[row[t] for t in batch]],
        model_id=MODEL_ID,
        dimension=vectors.shape[1],
    )


def info(client: redis.Redis, index: str) -> dict[str, Any]:
    raw = client.execute_command("FT.INFO", index)
    pairs = raw.items() if isinstance(raw, dict) else zip(raw[::2], raw[1::2], strict=False)
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in pairs}


def wait_indexed(client: redis.Redis, index: str) -> None:
    while str(info(client, index).get("indexing", 0)) not in ("0", "b'0'", "0.0"):
        time.sleep(0.2)


def index_mb(client: redis.Redis, index: str) -> float:
    return float(info(client, index).get("vector_index_sz_mb", 0))


def load(cache: semcache.Cache, texts: list[str]) -> float:
    """Store every text's entry through store_many in batches; returns entries per second."""
    start = time.perf_counter()
    for lo in range(0, len(texts), BATCH):
        batch = texts[lo : lo + BATCH]
        stored = cache.store_many([(chat(t), ANSWER) for t in batch])
        assert stored == len(batch), f"only {stored} of {len(batch)} stored"
        if lo and lo % 100_000 == 0:
            rate = lo / (time.perf_counter() - start)
            print(f"    {lo:>9,} loaded ({rate:,.0f}/s)", flush=True)
    return len(texts) / (time.perf_counter() - start)


def search(
    client: redis.Redis, keys: Keys, index: str, queries: np.ndarray, truth: np.ndarray,
    scope: str, ef: int | None, dtype: type, best: np.ndarray, policy: str | None = None,
) -> dict[str, float]:  # fmt: skip
    """p50/p99 of the cache's KNN query (with the hybrid plan it names, ``policy``) and recall@1
    against brute force; for each miss, how much less similar the returned entry is than the true
    nearest (``gap``)."""
    times, correct, gaps = [], 0, []
    for query, want, top in zip(queries, truth, best, strict=True):
        command = list(knn(keys, vector=query.astype(dtype).tobytes(), scope=scope,
                           k=4, ef=ef, policy=policy))  # fmt: skip
        command[1] = index
        start = time.perf_counter()
        reply = client.execute_command(*command)
        times.append((time.perf_counter() - start) * 1000)
        rows = parse_search(reply)
        hit = bool(rows) and rows[0][0].rsplit(":", 1)[-1] == want
        correct += hit
        if not hit:
            gaps.append(float(top) - (1 - float(rows[0][1]["dist"])) if rows else 2.0)
    within = sum(g < 0.01 for g in gaps) / len(gaps) if gaps else 1.0
    return {"recall_at_1": correct / len(queries), "misses_within_0.01": within,
            "miss_gap_max": max(gaps, default=0.0), **summary(times)}  # fmt: skip


def brute_force(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    best = np.zeros(len(queries), dtype=np.int64)
    score = np.full(len(queries), -np.inf, dtype=np.float32)
    for lo in range(0, len(vectors), 100_000):
        sims = queries @ vectors[lo : lo + 100_000].T
        top = sims.argmax(axis=1)
        found = sims[np.arange(len(queries)), top]
        better = found > score
        best[better], score[better] = top[better] + lo, found[better]
    return best


def variant(
    texts: list[str], vectors: np.ndarray, queries: np.ndarray, truth_rows: np.ndarray,
    datatype: str, with_flat: bool, m: int = 16,
) -> list[dict[str, Any]]:  # fmt: skip
    """Load one index variant on a fresh server and measure it (and FLAT over the same docs)."""
    params = IndexParams(datatype=datatype, m=m)
    best = (queries * vectors[truth_rows]).sum(axis=1)
    config = semcache.CacheConfig(namespace="scale", index=params, ttl=None)
    embedder = table_embedder(texts, vectors)
    rows: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedServer(tmp, persist=False, maxmemory="0") as server,
    ):
        client = redis.Redis.from_url(server.url)
        before = int(client.info("memory")["used_memory"])
        with semcache.Cache(
            redis_url=server.url,
            embedder=embedder,
            config=config,
            timeout=5.0,  # bulk writes
        ) as cache:
            rate = load(cache, texts)
            keys = cache._core.planner.keys()
            plans = [cache.plan(chat(texts[i])) for i in truth_rows]
            truth = np.array([p.digest for p in plans])
            scope = plans[0].scope
        wait_indexed(client, keys.index)
        grown = (int(client.info("memory")["used_memory"]) - before) / len(texts)
        base = {"entries": len(texts), "datatype": datatype, "m": m, "load_per_s": rate,
                "used_memory_per_entry_bytes": grown}  # fmt: skip
        hnsw_mb = index_mb(client, keys.index)
        dtype = np.float16 if datatype == "float16" else np.float32
        # every entry shares one scope: the plan the cache names for it (semcache/core/hybrid.py)
        policy = hybrid.BATCHES if hybrid.walks(len(texts), len(texts)) else None
        for ef in EFS:
            found = search(client, keys, keys.index, queries, truth, scope, ef, dtype, best,
                           policy)  # fmt: skip
            rows.append({**base, "algorithm": "hnsw", "ef_runtime": ef,
                         "vector_index_mb": hnsw_mb, **found})  # fmt: skip
            report(rows[-1])
        if with_flat:
            rows.append(
                flat(client, keys, len(texts), base, queries, truth, scope, dtype, hnsw_mb, best)
            )
            report(rows[-1])
    return rows


def flat(
    client: redis.Redis, keys: Keys, n: int, base: dict[str, Any], queries: np.ndarray,
    truth: np.ndarray, scope: str, dtype: type, hnsw_mb: float, best: np.ndarray,
) -> dict[str, Any]:  # fmt: skip
    """A FLAT index over the same documents: build rate, size and the same queries."""
    command = list(
        create_index(keys, 384, IndexParams(algorithm="flat", datatype=base["datatype"]))
    )
    name = command[1] = keys.index.replace("idx", "flat")
    with contextlib.suppress(redis.ResponseError):  # a previous run's index (documents kept)
        client.execute_command("FT.DROPINDEX", name)
    start = time.perf_counter()
    client.execute_command(*command)
    wait_indexed(client, name)
    build = n / (time.perf_counter() - start)
    flat_mb = index_mb(client, name)
    # Per entry with FLAT instead of HNSW: the same keys, the other vector index.
    per_entry = base["used_memory_per_entry_bytes"] + (flat_mb - hnsw_mb) * 2**20 / n
    found = search(client, keys, name, queries, truth, scope, None, dtype, best)
    return {**base, "algorithm": "flat", "ef_runtime": None, "index_build_per_s": build,
            "vector_index_mb": flat_mb, "used_memory_per_entry_bytes": per_entry, **found}  # fmt: skip


def report(row: dict[str, Any]) -> None:
    print(f"  {row['entries']:>9,} {row['algorithm']:<4} {row['datatype']:<7} "
          f"ef={row['ef_runtime']!s:<4} recall@1={row['recall_at_1']:.3f} "
          f"p50={row['p50_ms']:.2f}ms p99={row['p99_ms']:.2f}ms "
          f"mem={row['used_memory_per_entry_bytes']:,.0f}B/entry "
          f"index={row['vector_index_mb']:.0f}MB load={row['load_per_s']:,.0f}/s", flush=True)  # fmt: skip


def main() -> None:
    logging.basicConfig(level=logging.WARNING)  # the cache's warnings (a failed batch) show
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--float16-max", type=int, default=100_000,
                        help="also load FLOAT16 variants up to this size")  # fmt: skip
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--m", default=str(IndexParams().m), help="HNSW M values, e.g. 32,64")
    parser.add_argument("--data", choices=["interpolated", "isotropic"], default="interpolated")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    ms = [int(m) for m in args.m.split(",")]
    sizes = [int(s) for s in args.sizes.split(",")]
    real, centres, embed_rate = real_embeddings(100_000)
    print(f"real embeddings: {len(real):,} texts at {embed_rate:,.0f}/s", flush=True)
    rng = np.random.default_rng(3)
    rows: list[dict[str, Any]] = []
    for size in sizes:
        texts = texts_for(size, real)
        vectors = np.vstack([centres[:size], drawn(centres, size - len(real), rng, args.data)])
        picks = rng.integers(0, size, args.queries)
        queries = near(vectors[picks], rng, noise=0.008)
        truth_rows = brute_force(vectors, queries)
        print(f"{size:,} entries ({'real' if size <= len(real) else 'drawn around real'}); "
              f"query cosine to source p50 {np.median((queries * vectors[picks]).sum(1)):.3f}",
              flush=True)  # fmt: skip
        for m in ms:
            rows += variant(texts, vectors, queries, truth_rows, "float32", m == ms[0], m)
            if size <= args.float16_max:
                rows += variant(texts, vectors, queries, truth_rows, "float16", False, m)
            write(args.out, rows, embed_rate, sizes, args.data)


def write(
    out: Path, rows: list[dict[str, Any]], embed_rate: float, sizes: list[int], data: str
) -> None:
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}, "
        "2 cores shared",
        "sizes": sizes,
        "embed_per_s": embed_rate,
        "hnsw": {"ef_construction": IndexParams().ef_construction},
        "data": data,
        "note": "Up to 100k: real all-MiniLM-L6-v2 embeddings of generated questions; 1M: those "
        f"100,000 plus vectors drawn around them ({data}). Queries: stored entries plus noise "
        "(near-duplicates).",
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
