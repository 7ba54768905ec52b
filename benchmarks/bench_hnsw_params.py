"""HNSW recall on hard, clustered data, per M / EF_CONSTRUCTION: why the defaults are what they are.

The data is bench_scale's: 10,000 real all-MiniLM-L6-v2 embeddings of generated questions, the rest
drawn around them with Gaussian noise (``--noise`` per dimension, renormalised); queries are stored
entries plus noise (0.008 per dimension), recall@1 against numpy brute force. Such data is harder
for HNSW than real traffic (the noise spreads every cluster over all 384 dimensions), which makes it
a good stress test of the graph's parameters. Vectors are written with plain HSETs (no cache
overhead) into an index with the cache's schema; each query is the cache's scope-filtered KNN, and
also an unfiltered one, so the filter's effect is visible.

Usage: python benchmarks/bench_hnsw_params.py --entries 300000 --params 16:200,32:400
Writes benchmarks/results/hnsw_params.json (one row per entries x params x EF_RUNTIME).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_latency import clustered, load_index, questions, summary
from semcache._redis import IndexParams, Keys, parse_search
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "hnsw_params.json"


def real_embeddings(n: int = 10_000) -> np.ndarray:
    saved = Path(tempfile.gettempdir()) / f"semcache-bench-real-{n}.npz"  # shared with bench_scale
    if saved.exists():
        return np.load(saved)["vectors"]
    import semcache

    vectors = semcache.SentenceTransformerEmbedder(threads=2).embed(questions(n, seed=5))
    np.savez(saved, vectors=vectors, rate=0.0)
    return vectors


def knn(
    client: redis.Redis, index: str, query: np.ndarray, ef: int, filtered: bool
) -> tuple[float, str]:
    where = "@scope:{s0}" if filtered else "*"
    start = time.perf_counter()
    reply = client.execute_command(
        "FT.SEARCH", index, f"{where}=>[KNN 4 @vec $vec EF_RUNTIME {ef} AS dist]",
        "PARAMS", 2, "vec", query.tobytes(), "SORTBY", "dist", "RETURN", 1, "dist",
        "LIMIT", 0, 4, "DIALECT", 2,
    )  # fmt: skip
    rows = parse_search(reply)
    return (time.perf_counter() - start) * 1000, rows[0][0].rsplit(":", 1)[-1] if rows else ""


def measure(
    entries: int, noise: float, m: int, efc: int, efs: list[int], n_queries: int
) -> list[dict[str, Any]]:
    real = real_embeddings()
    rng = np.random.default_rng(3)
    vectors = np.vstack(
        [real[:entries], clustered(real, max(0, entries - len(real)), rng, noise=noise)]
    )
    picks = rng.integers(0, entries, n_queries)
    queries = clustered(vectors[picks], n_queries, rng, noise=0.008)
    truth = [str(i) for i in np.argmax(queries @ vectors.T, axis=1)]
    rows = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        EmbeddedServer(tmp, persist=False, maxmemory="0") as server,
    ):
        client = redis.Redis.from_url(server.url)
        keys = Keys("hnsw")
        rate = load_index(client, keys, vectors, IndexParams(m=m, ef_construction=efc))
        for ef in efs:
            for filtered in (True, False):
                found = [knn(client, keys.index, q, ef, filtered) for q in queries]
                recall = sum(doc == want for (_, doc), want in zip(found, truth, strict=True))
                row = {"entries": entries, "noise": noise, "m": m, "ef_construction": efc,
                       "ef_runtime": ef, "scope_filter": filtered, "load_per_s": rate,
                       "recall_at_1": recall / n_queries, **summary([t for t, _ in found])}  # fmt: skip
                rows.append(row)
                print(f"{entries:>9,} M={m:<3} EFC={efc:<4} ef={ef:<4} filter={filtered!s:<5} "
                      f"recall@1={row['recall_at_1']:.3f} p50={row['p50_ms']:.2f} ms "
                      f"p99={row['p99_ms']:.2f} ms load={rate:,.0f}/s", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", default="300000")
    parser.add_argument("--params", default="16:200,32:400", help="M:EF_CONSTRUCTION pairs")
    parser.add_argument("--ef", default="64,256")
    parser.add_argument("--noise", type=float, default=0.02)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    efs = [int(x) for x in args.ef.split(",")]
    rows: list[dict[str, Any]] = []
    for entries in (int(x) for x in args.entries.split(",")):
        for pair in args.params.split(","):
            m, efc = (int(x) for x in pair.split(":"))
            rows += measure(entries, args.noise, m, efc, efs, args.queries)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}",
                "rows": rows}, indent=2))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
