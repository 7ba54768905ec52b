"""Where a miss's time goes against RedisVL: the search command itself, sent bare.

``benchmarks/compare.py --speed-only`` found semcache's miss slower than RedisVL's SemanticCache
(1.25-1.49x, when it searched by KNN). The two sent different searches: semcache a scoped KNN
(the ``k`` nearest candidates, whatever their distance, under the hybrid plan
``semcache/core/hybrid.py`` picks),
RedisVL a range query (``VECTOR_RANGE`` at its distance threshold, HNSW ``EPSILON`` 0.01), which on
a miss returns nothing and can stop early. This measures both commands bare (redis-py,
``execute_command``) on the texts and vectors of the compare's speed run, interleaved, at each size,
on one embedded Redis, with a bare GET in the same run as the floor:

- the cache's own search exactly as a lookup sends it (``semcache``: the range query at its
  decision's floor, the default since ``CacheConfig(search=...)``), the KNN a ``search="knn"``
  cache sends (``knn``, its fields and hybrid plan), and that KNN under ``HYBRID_POLICY BATCHES``;
- range queries at radius 0.1 (cosine 0.9, the compare's cut-off) with ``EPSILON`` 0.01 (RedisVL's
  setting there), 0.02, 0.03 and 0.05 (the cache's own, ``RANGE_EPSILON``);

for misses (unrelated PAWS sentences) and paraphrases of stored texts, with the share of
paraphrases whose first result is their own source within the radius (recall). What a range query
saves on a miss is what it may lose in recall; both are printed side by side.

Usage: python benchmarks/bench_search_floor.py [--sizes 1000,100000] [--rounds 2]
(writes benchmarks/results/search_floor.json with the load average)
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks import _compare_eval as ev
from benchmarks import _compare_speed as sp
from benchmarks import compare as cp
from benchmarks._results import Run
from benchmarks.bench_accuracy import embed_all
from benchmarks.bench_scale import wait_indexed
from semcache.redis.commands import knn
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "search_floor.json"
RADIUS = 0.1
EPSILONS = (0.01, 0.02, 0.03, 0.05)
PROBES = 200
Searches = dict[str, tuple[Any, ...]]


def ranged(index: str, scope: str, blob: bytes, epsilon: float, k: int) -> tuple[Any, ...]:
    """RedisVL's kind of search: the documents within :data:`RADIUS`, nearest first."""
    query = (f"@scope:{{{scope}}} @vec:[VECTOR_RANGE {RADIUS} $vec]"
             f"=>{{$YIELD_DISTANCE_AS: dist; $EPSILON: {epsilon}}}")  # fmt: skip
    return ("FT.SEARCH", index, query, "PARAMS", 2, "vec", blob, "SORTBY", "dist",
            "RETURN", 2, "dist", "text", "LIMIT", 0, k, "DIALECT", 2)  # fmt: skip


def first(reply: Any) -> tuple[str, float] | None:
    """The first result's text and distance (a RESP2 or RESP3 reply), or None."""
    if isinstance(reply, dict):  # RESP3
        results = reply[b"results"]
        if not results:
            return None
        values = {k.decode(): v for k, v in results[0][b"extra_attributes"].items()}
    else:
        if not reply or reply[0] == 0:
            return None
        fields = reply[2]
        values = {fields[i].decode(): fields[i + 1] for i in range(0, len(fields), 2)}
    return values["text"].decode(), float(values["dist"])


def searches(cache: semcache.Cache, knn_cache: semcache.Cache) -> Callable[[bytes], Searches]:
    """Each measured search, for a query vector: ``semcache``, the search a lookup of ``cache``
    sends (a range query at its decision's floor, by default); ``knn``, the one a
    ``search="knn"`` cache sends (``knn_cache``, under the hybrid plan it learned); the KNN under
    ``HYBRID_POLICY BATCHES``; RedisVL-style range queries at :data:`RADIUS` and each of
    :data:`EPSILONS`. The plan is made once."""
    plan = cache.plan(sp.sy.chat("probe"), tenant="lat")
    ours, theirs = cache._core.semantic, knn_cache._core.semantic
    index = plan.keys.index_of(0)
    k, fields = cache.config.top_k, cache.decision.return_fields

    def make(blob: bytes) -> Searches:
        out = {
            "semcache": ours._knn(plan, blob, 0),
            "knn": theirs._knn(plan, blob, 0),
            "knn_batches": knn(plan.keys, vector=blob, scope=plan.scope, k=k, ef=None,
                               fields=fields, policy="BATCHES"),
        }  # fmt: skip
        for epsilon in EPSILONS:
            out[f"range_eps_{epsilon}"] = ranged(index, plan.scope, blob, epsilon, k)
        return out

    return make


def measure(client: redis.Redis, make: Callable[[bytes], Searches], texts: dict[str, Any],
            table: Any, stored: list[str], rounds: int) -> dict[str, Any]:  # fmt: skip
    """p50 ms per command and probe kind, and each command's recall of the paraphrases."""
    rng = random.Random(7)
    kinds = {"miss": texts["unrelated"], "paraphrase": texts["paraphrase"]}
    times: dict[str, dict[str, list[float]]] = {kind: {} for kind in kinds}
    found: dict[str, int] = {}
    for r in range(rounds):
        for kind, probes in kinds.items():
            for text, source in probes:
                blob = table.one(text).astype(np.float32).tobytes()
                named = [*make(blob).items(), ("bare_get", ("GET", "x"))]
                rng.shuffle(named)
                for name, command in named:
                    start = time.perf_counter()
                    reply = client.execute_command(*command)
                    times[kind].setdefault(name, []).append((time.perf_counter() - start) * 1000)
                    if r == 0 and kind == "paraphrase" and name != "bare_get":
                        top = first(reply)
                        ok = top is not None and top[0] == stored[source] and top[1] <= RADIUS
                        found[name] = found.get(name, 0) + ok
    out: dict[str, Any] = {}
    for kind, rows in times.items():
        p50 = {name: statistics.median(t) for name, t in rows.items()}
        out[kind] = {
            "p50_ms": {name: round(v, 4) for name, v in p50.items()},
            "to_knn": {n: round(v / p50["knn"], 3) for n, v in p50.items()},
        }
    out["paraphrase_recall"] = {n: v / len(texts["paraphrase"]) for n, v in found.items()}
    return out


def run_size(url: str, n: int, table: Any, texts: dict[str, Any], rounds: int) -> dict[str, Any]:
    client = redis.Redis.from_url(url)
    client.flushall()
    stored = list(texts["stored"])
    vectors = np.vstack([table.one(t) for t in stored])
    embedder, name = table.embedder(f"floor-{n}"), f"floor-{n}"
    knn_config = semcache.CacheConfig(namespace=name, search="knn")
    with (
        semcache.Cache(redis_url=url, embedder=embedder, namespace=name) as cache,
        semcache.Cache(redis_url=url, embedder=embedder, config=knn_config) as knn_cache,
    ):
        for lo in range(0, n, sp.BATCH):
            pairs = [(sp.sy.chat(t), sp.sy.response(sp.answer_of(lo + i)))
                     for i, t in enumerate(stored[lo : lo + sp.BATCH])]  # fmt: skip
            assert cache.store_many(pairs, tenant="lat", vectors=vectors[lo : lo + sp.BATCH])
        wait_indexed(client, cache.plan(sp.sy.chat("probe")).keys.index_of(0))
        for text, _ in texts["unrelated"][:20]:  # the KNN's hybrid plan's counts, connections
            cache.lookup(sp.sy.chat(text), tenant="lat")
            knn_cache.lookup(sp.sy.chat(text), tenant="lat")
        make = searches(cache, knn_cache)
        row = {"entries": n, **measure(client, make, texts, table, stored, rounds)}
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,100000")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--real",
        type=int,
        default=5000,
        help="embed only this many stored texts, as compare.py --real",
    )
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    cp.forbid_network()
    sizes = [int(s) for s in args.sizes.split(",")]
    unrelated = [r[0] for r in ev.read_paws(cp.SHARED / "paws-wiki-dev.tsv")]
    speed = {n: sp.speed_texts(n, PROBES, unrelated, 50) for n in sizes}
    bulk = semcache.OnnxEmbedder(threads=2, batch_size=64)
    rows = embed_all(cp.speed_batch(speed, args.real), bulk)
    table = cp.Table(rows | sp.drawn_rows(speed, rows), bulk)
    run = Run()
    out = []
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        for n in sizes:
            out.append(run_size(server.url, n, table, speed[n], args.rounds))
            print(json.dumps(out[-1]), flush=True)
    run.write(Path(args.out), radius=RADIUS, sizes=out)


if __name__ == "__main__":
    main()
