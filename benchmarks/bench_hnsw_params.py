"""HNSW recall per M / EF_CONSTRUCTION on clustered data: why the defaults are what they are.

The data is bench_scale's (``benchmarks/_data.py``): the first ``--centres`` of 100,000 real
all-MiniLM-L6-v2 embeddings of generated questions, the rest drawn around them, either
``interpolated`` (between real neighbours: clusters like real data) or ``isotropic`` (Gaussian
noise in all 384 dimensions: a hub-and-spoke stress case, where HNSW can reach at most about 2*M
copies of each centre). Queries are stored entries plus noise (0.008 per dimension, cosine ~0.988),
recall@1 against numpy brute force. Vectors are written with plain HSETs (no cache overhead) into an
index with the cache's schema; each query is the cache's scope-filtered KNN, and also an unfiltered
one, so the filter's effect is visible.

Usage: python benchmarks/bench_hnsw_params.py --entries 300000 --params 16:200,32:400
           [--data interpolated|isotropic] [--centres 100000]
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

from benchmarks._data import drawn, near, real_embeddings
from benchmarks.bench_latency import load_index, summary
from semcache.core.types import IndexParams
from semcache.redis.keys import Keys
from semcache.redis.replies import parse_search
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "hnsw_params.json"


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
    entries: int, data: str, centres: int, m: int, efc: int, efs: list[int], n_queries: int
) -> list[dict[str, Any]]:
    real = real_embeddings(100_000)[1][:centres]
    rng = np.random.default_rng(3)
    vectors = np.vstack([real[:entries], drawn(real, entries - len(real), rng, data)])
    picks = rng.integers(0, entries, n_queries)
    queries = near(vectors[picks], rng, noise=0.008)
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
                row = {"entries": entries, "data": data, "centres": centres, "m": m,
                       "ef_construction": efc, "ef_runtime": ef, "scope_filter": filtered,
                       "load_per_s": rate,
                       "recall_at_1": recall / n_queries, **summary([t for t, _ in found])}  # fmt: skip
                rows.append(row)
                print(f"{entries:>9,} {data} ({centres:,} centres) M={m:<3} EFC={efc:<4} "
                      f"ef={ef:<4} filter={filtered!s:<5} "
                      f"recall@1={row['recall_at_1']:.3f} p50={row['p50_ms']:.2f} ms "
                      f"p99={row['p99_ms']:.2f} ms load={rate:,.0f}/s", flush=True)  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", default="300000")
    parser.add_argument("--params", default="16:200,32:400", help="M:EF_CONSTRUCTION pairs")
    parser.add_argument("--ef", default="64,256")
    parser.add_argument("--data", choices=["interpolated", "isotropic"], default="interpolated")
    parser.add_argument("--centres", type=int, default=100_000, help="real embeddings drawn around")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    efs = [int(x) for x in args.ef.split(",")]
    rows: list[dict[str, Any]] = []
    for entries in (int(x) for x in args.entries.split(",")):
        for pair in args.params.split(","):
            m, efc = (int(x) for x in pair.split(":"))
            rows += measure(entries, args.data, args.centres, m, efc, efs, args.queries)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps({
                "date": time.strftime("%Y-%m-%d"),
                "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}",
                "rows": rows}, indent=2))  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
