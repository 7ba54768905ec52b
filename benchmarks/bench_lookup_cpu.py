"""A lookup's time and client CPU on this tree against another git ref (default: main), same run.

Each tree runs in its own subprocess (its own ``semcache`` on ``PYTHONPATH``), the two alternating
``--rounds`` times against one embedded Redis, with the default local embedder. A child stores 200
entries, looks each paraphrase up once (so its vector is in memory), then times, interleaved with
their floors: exact hits (floor: a bare redis-py GET of the same key) and semantic hits with the
vector in memory (floor: a bare pipelined GET + FT.SEARCH of the same query). Wall time is around
the whole ``cache.lookup`` call; CPU is the calling thread's. On a shared machine wall times stretch
with the load, so each path is also given against its floor measured beside it, and the trees are
compared on those ratios too (the steadier figure).

Usage: python benchmarks/bench_lookup_cpu.py [--ref main] [--rounds 3] [--tenant NAME] [--out FILE]
(writes benchmarks/results/lookup_cpu.json, or FILE, with the load average)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "lookup_cpu.json"
PATHS = ("exact", "semantic")


def child(url: str, tenant: str | None = None) -> dict[str, Any]:
    """One tree's figures (runs with that tree's ``semcache`` importable)."""
    import redis

    import semcache
    from semcache.embedding.default import default_local_embedder
    from semcache.redis.commands import knn

    def chat(text: str) -> dict[str, Any]:
        return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}

    answer = {"choices": [{"message": {"role": "assistant", "content": "An answer " * 40}}],
              "model": "gpt-4o-mini", "usage": {"prompt_tokens": 20, "completion_tokens": 80}}  # fmt: skip
    texts = [f"How do I reset the password of account {i} on a weekend?" for i in range(200)]
    client = redis.Redis.from_url(url)
    wall: dict[str, list[float]] = {n: [] for n in ("get", "exact", "pipe", "semantic")}
    cpu: dict[str, list[float]] = {n: [] for n in wall}

    def timed(name: str, fn: Any) -> None:
        start, start_cpu = time.perf_counter(), time.thread_time()
        fn()
        wall[name].append((time.perf_counter() - start) * 1000)
        cpu[name].append((time.thread_time() - start_cpu) * 1000)

    namespace = f"cpu-{os.getpid()}"
    embedder = semcache.Batching(default_local_embedder())
    with semcache.Cache(redis_url=url, embedder=embedder, namespace=namespace) as cache:
        for text in texts:
            cache.store(chat(text), answer, tenant=tenant)
        probes = [f"Quick question: {t[0].lower()}{t[1:]}" for t in texts]
        hits = [cache.lookup(chat(p), tenant=tenant).layer for p in probes]
        floors = {}
        for text, probe in zip(texts, probes, strict=True):
            plan = cache.plan(chat(probe), tenant=tenant)
            vector = cache._core.embeddings.recall(plan.text, plan.tenant)
            assert vector is not None
            floors[probe] = (cache.plan(chat(text), tenant=tenant).exact_key, plan.exact_key, knn(
                plan.keys, vector=vector.tobytes(), scope=plan.scope, k=cache.config.top_k,
                ef=None, fields=cache.decision.return_fields))  # fmt: skip

        def pipe(key: str, search: Any) -> Any:
            p = client.pipeline(transaction=False)
            p.get(key)
            p.execute_command(*search)
            return p.execute()

        for round_ in range(3):
            for text, probe in zip(texts, probes, strict=True):
                exact_key, probe_key, search = floors[probe]
                calls = [
                    ("get", lambda k=exact_key: client.get(k)),
                    ("exact", lambda q=text: cache.lookup(chat(q), tenant=tenant)),
                    ("pipe", lambda k=probe_key, s=search: pipe(k, s)),
                    ("semantic", lambda q=probe: cache.lookup(chat(q), tenant=tenant)),
                ]
                for name, fn in calls if round_ % 2 == 0 else calls[::-1]:
                    timed(name, fn)
        layers = [cache.lookup(chat(p), tenant=tenant).layer for p in probes[:50]]
        cache.flush()
    out: dict[str, Any] = {
        name: {
            "wall_p50_ms": statistics.median(wall[name]),
            "cpu_p50_ms": statistics.median(cpu[name]),
        }
        for name in wall
    }
    out["semantic_hit_rate"] = layers.count("semantic") / len(layers)
    out["first_pass_semantic_hit_rate"] = hits.count("semantic") / len(hits)
    return out


def run_tree(tree: Path, url: str, tenant: str | None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1"}
    code = f"import json, runpy; m = runpy.run_path({str(Path(__file__))!r}); "
    code += f"print(json.dumps(m['child']({url!r}, {tenant!r})))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tree, capture_output=True,
                         text=True, check=True)  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds, and each path against its floor."""
    out: dict[str, Any] = {}
    for name in ("get", "exact", "pipe", "semantic"):
        out[name] = {k: statistics.median(r[name][k] for r in rows)
                     for k in ("wall_p50_ms", "cpu_p50_ms")}  # fmt: skip
    for path, floor in (("exact", "get"), ("semantic", "pipe")):
        for k in ("wall_p50_ms", "cpu_p50_ms"):
            out[path][f"{k[:-3]}_ratio_to_floor"] = out[path][k] / out[floor][k]
    out["semantic_hit_rate"] = min(r["semantic_hit_rate"] for r in rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ref", default="main", help="the git ref to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tenant", default=None, help="the tenant every entry and lookup has")
    parser.add_argument("--out", default=str(RESULTS), help="the results file")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from semcache.server import EmbeddedServer

    load = [round(os.getloadavg()[0], 2)]
    rows: dict[str, list[dict[str, Any]]] = {"this": [], args.ref: []}
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        ref_tree = Path(tmp) / "ref"
        ref_tree.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.ref], check=True,
                                 capture_output=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(ref_tree)], input=archive, check=True)
        for i in range(args.rounds):
            trees = [("this", ROOT), (args.ref, ref_tree)]
            for name, tree in trees if i % 2 == 0 else trees[::-1]:
                rows[name].append(run_tree(tree, server.url, args.tenant))
                print(f"round {i} {name}: {json.dumps(rows[name][-1])}")
    load.append(round(os.getloadavg()[0], 2))
    this, ref = summary(rows["this"]), summary(rows[args.ref])
    # Each against its own floor first: the two trees' rounds ran under different loads.
    keys = ("wall_p50_ms", "cpu_p50_ms", "wall_p50_ratio_to_floor", "cpu_p50_ratio_to_floor")
    versus = {
        f"{path}_{k}_this_to_{args.ref}": this[path][k] / ref[path][k]
        for path in PATHS
        for k in keys
    }
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load_average_1min": load,
        "ref": args.ref,
        "tenant": args.tenant,
        "this": this,
        args.ref: ref,
        "versus": versus,
        "rounds": rows,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({"this": this, args.ref: ref, "versus": versus}, indent=1))
    print(f"load average {load}; wrote {out}")


if __name__ == "__main__":
    main()
