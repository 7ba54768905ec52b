"""Single node vs a local 3-master Redis Cluster, and the L1 tier against an exact hit.

In one run, both on 127.0.0.1 over TCP, each started by semcache's own launcher:
- throughput of exact and semantic lookups from several client processes (each its own Cache),
  on one node, on the cluster, and on the cluster with the namespace split into 3 shards;
- p50/p99 of an L1 hit against an exact hit over the network (one process, one hot key).

Entries: 2,000 real all-MiniLM-L6-v2 embeddings of generated questions (from bench_scale's cache
of them, else embedded here); semantic probes are those vectors plus noise, served by a table
embedder so the figures are Redis and semcache, not the model. On this 2-core machine the client
processes and the Redis processes share the same cores, so the cluster cannot show more than its
overhead here; on real nodes each master has its own CPU.

Usage: python benchmarks/bench_cluster.py [--processes 4] [--seconds 5]
       (writes benchmarks/results/cluster.json)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks._data import near, real_embeddings
from benchmarks.bench_latency import ANSWER, chat, summary, timed
from benchmarks.bench_scale import table_embedder
from semcache.server import EmbeddedCluster, EmbeddedServer, free_ports

RESULTS = Path(__file__).parent / "results" / "cluster.json"
ENTRIES = 2000


def data() -> tuple[list[str], list[str], np.ndarray]:
    """Stored texts, probe texts, and one vector per text (stored first, probes after)."""
    texts, vectors, _ = real_embeddings(10_000)
    stored = texts[:ENTRIES]
    probes = [f"probe: {t}" for t in stored]
    rows = np.vstack([vectors[:ENTRIES], near(vectors[:ENTRIES], np.random.default_rng(1), 0.008)])
    return stored, probes, rows


def open_cache(url: str, shards: int, l1: int = 0) -> semcache.Cache:
    stored, probes, rows = data()
    config = semcache.CacheConfig(namespace=f"bench-{shards}", shards=shards, l1_size=l1,
                                  ttl=None, decision=semcache.ThresholdDecision())  # fmt: skip
    return semcache.Cache(redis_url=url, embedder=table_embedder(stored + probes, rows),
                          config=config, timeout=5.0)  # fmt: skip


def worker(url: str, shards: int, kind: str, seconds: float, out: Any) -> None:
    stored, probes, _ = data()
    texts = stored if kind == "exact" else probes
    with open_cache(url, shards) as cache:
        cache.lookup(chat(texts[0]))  # connect and warm
        done, hits, deadline = 0, 0, time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            result = cache.lookup(chat(texts[done % len(texts)]))
            hits += result.layer == kind
            done += 1
    out.put((done, hits))


def throughput(url: str, shards: int, kind: str, processes: int, seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=worker, args=(url, shards, kind, seconds, queue))
               for _ in range(processes)]  # fmt: skip
    for w in workers:
        w.start()
    results = [queue.get() for _ in workers]
    for w in workers:
        w.join()
    done, hits = sum(r[0] for r in results), sum(r[1] for r in results)
    return {"lookups_per_s": done / seconds, "hit_rate": hits / max(done, 1)}


def load(url: str, shards: int) -> None:
    stored, _, _ = data()
    with open_cache(url, shards) as cache:
        cache.flush()
        assert cache.store_many([(chat(t), ANSWER) for t in stored]) == len(stored)


def l1_latency(url: str) -> dict[str, Any]:
    stored, _, _ = data()
    with open_cache(url, 1, l1=64) as hot, open_cache(url, 1) as plain:
        request = chat(stored[0])
        hot.lookup(request)
        l1 = [timed(lambda: hot.lookup(request)) for _ in range(5000)]
        exact = [timed(lambda: plain.lookup(request)) for _ in range(5000)]
        assert hot.lookup(request).layer == "l1" and plain.lookup(request).layer == "exact"
    return {"l1_hit": summary(l1), "exact_hit_tcp": summary(exact)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    data()  # compute (or read) the embeddings once, before the workers need them
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        server = EmbeddedServer(Path(tmp) / "single", port=free_ports(1)[0], persist=False)
        with server, EmbeddedCluster(Path(tmp) / "cluster", masters=3) as cluster:
            setups = [("single node", server.url, 1), ("3-master cluster", cluster.url, 1),
                      ("3-master cluster, 3 shards", cluster.url, 3)]  # fmt: skip
            for name, url, shards in setups:
                load(url, shards)
                for kind in ("exact", "semantic"):
                    row = {"setup": name, "lookup": kind, "processes": args.processes,
                           **throughput(url, shards, kind, args.processes, args.seconds)}  # fmt: skip
                    rows.append(row)
                    print(f"  {name:<28} {kind:<9} {row['lookups_per_s']:>8,.0f} lookups/s "
                          f"(hit rate {row['hit_rate']:.2f})", flush=True)  # fmt: skip
            hot = l1_latency(server.url)
    print(f"  L1 hit p50 {hot['l1_hit']['p50_ms']:.4f} ms p99 {hot['l1_hit']['p99_ms']:.4f} ms; "
          f"exact hit over TCP p50 {hot['exact_hit_tcp']['p50_ms']:.3f} ms "
          f"p99 {hot['exact_hit_tcp']['p99_ms']:.3f} ms")  # fmt: skip
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()} {platform.system()}, {platform.python_version()}, "
        "2 cores shared by clients and servers",
        "entries": ENTRIES,
        "throughput": rows,
        "l1": hot,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
