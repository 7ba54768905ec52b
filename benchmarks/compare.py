"""semcache side by side with GPTCache and RedisVL: accuracy at matched precision, and latency.

In one run, on one machine, with the same embedding model (the offline all-MiniLM-L6-v2) and the
same data, this drives:

- semcache in its default configuration (``CacheConfig()``) and its best-accuracy configuration
  (picked up by name, see :func:`best_accuracy`);
- GPTCache 0.1.44: sqlite + faiss (``manager_factory("sqlite,faiss")``), SearchDistanceEvaluation;
- RedisVL's SemanticCache, on the same embedded Redis (with the search module) as semcache.

Accuracy (``benchmarks/_compare_eval.py`` has the protocol): semcache's labelled pairs and the
PAWS-Wiki dev pairs (from ../shared/data). Each system first answers every query at its most
permissive threshold (which returns the nearest entry and its score); its own threshold is then
swept over one grid of cosine similarities converted to its scale, the threshold reaching 0.95 (and
0.90) precision with the most recall is chosen, and every query is looked up again, live, at the
system's default threshold and at the chosen ones: the reported figures are from that live pass,
and the JSON records how many live answers differ from the sweep's prediction (0 expected).

Latency: sequential stores and lookups on one thread, interleaved across systems (each text goes
to every system in a seeded random order, so the machine's noise falls on all of them alike), all at
cosine 0.9 so that every system sees the same hits and misses. Two modes: with the model (each
system embeds every text itself through the same model, on one torch thread) and with embeddings
precomputed (every system reads the same vectors from a table, so what is left is the cache).
GPTCache keeps sqlite and faiss on tmpfs (/dev/shm) since Redis runs without persistence; a second
GPTCache row keeps them on disk, as its default would.

Usage::

    pip install -e ".[bench]"                        # GPTCache 0.1.44, faiss-cpu, SQLAlchemy
    python benchmarks/compare.py [--paws-pairs N] [--quick]

Writes ``benchmarks/results/compare.json`` and prints the README tables.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import redis

import semcache
from benchmarks import _compare_eval as ev
from benchmarks import _compare_speed as sp
from benchmarks._compare_latency import LATENCY_COSINE, latency_texts, run_latency
from benchmarks._compare_report import markdown
from benchmarks.bench_accuracy import embed_all
from semcache import datasets
from semcache.embedding.embedders import DEFAULT_MODEL_ID
from semcache.server import EmbeddedServer

RESULTS = Path(__file__).parent / "results" / "compare.json"
SPEED_RESULTS = Path(__file__).parent / "results" / "compare_speed.json"
#: ../shared/data of the checkout (or of a worktree's parent folders).
SHARED = next(
    (d / "shared" / "data" for d in Path(__file__).resolve().parents if (d / "shared" / "data").is_dir()),
    Path(__file__).resolve().parents[2] / "shared" / "data",
)  # fmt: skip


# --- setup -----------------------------------------------------------------------------------------


def forbid_network() -> None:
    """Refuse every TCP connection that is not to this machine (the run must stay offline)."""
    real = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            host = str(address[0])
            if host not in ("127.0.0.1", "::1", "localhost"):
                raise OSError(f"compare.py runs offline; refused a connection to {host}")
        return real(self, address)

    socket.socket.connect = connect  # type: ignore[method-assign]


def require_bench_extra() -> None:
    # GPTCache pip-installs what it misses at run time; make sure it never has to.
    missing = [
        m for m in ("gptcache", "faiss", "sqlalchemy") if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise SystemExit(f"missing {', '.join(missing)}: pip install -e '.[bench]'")


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())  # fmt: skip
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.machine()}, Python {platform.python_version()}"


def best_accuracy() -> tuple[semcache.CacheConfig, str]:
    """semcache's best-accuracy configuration, found by name so that it stays right as the decision
    stage evolves: a ``best_accuracy`` preset if the package names one, else the decision stage
    with every check of the lexical guard switched on (the default leaves the strictest ones off).

    Left out on purpose: per-entry thresholds learn from feedback, which a labelled-pairs run does
    not give; a second opinion needs a second model or an LLM judge, which would no longer be the
    same-model comparison."""
    for owner in (semcache, semcache.CacheConfig):
        preset = getattr(owner, "best_accuracy", None)
        if callable(preset):
            return preset(), f"{owner.__name__}.best_accuracy()"
    decision, guard = getattr(semcache, "GuardedDecision", None), getattr(semcache, "Guard", None)
    if decision is None or guard is None:
        return semcache.CacheConfig(), "CacheConfig() (no decision stage beyond the threshold yet)"
    checks = [
        f.name for f in dataclasses.fields(guard) if isinstance(getattr(guard(), f.name), bool)
    ]
    config = semcache.CacheConfig(decision=decision(guard=guard(**dict.fromkeys(checks, True))))
    return (
        config,
        f"CacheConfig(decision=GuardedDecision(guard=Guard({', '.join(f'{c}=True' for c in checks)})))",
    )


def plain_threshold() -> tuple[semcache.CacheConfig, str] | None:
    """The plain global threshold, when the default is more than that: the same decision as the
    other two systems, so its row checks the scale conversions and isolates what the checks add."""
    if not hasattr(semcache, "ThresholdDecision"):
        return None
    return semcache.CacheConfig(
        decision=semcache.ThresholdDecision()
    ), "CacheConfig(decision=ThresholdDecision())"


class Table:
    """Precomputed vectors, with the model as a fallback for texts not in the table."""

    def __init__(self, rows: dict[str, np.ndarray], model: semcache.Embedder) -> None:
        self.model = model
        self.rows = rows

    def one(self, text: str) -> np.ndarray:
        row = self.rows.get(text)
        return row if row is not None else self.model.embed([text])[0]

    def embedder(self, model_id: str) -> semcache.Embedder:
        return semcache.CallableEmbedder(lambda texts: np.stack([self.one(t) for t in texts]),
                                         model_id=model_id, dimension=384)  # fmt: skip


@dataclasses.dataclass
class Env:
    url: str
    client: redis.Redis
    tmp: Path
    shm: Path
    configs: dict[str, tuple[semcache.CacheConfig, str]]


def make_systems(env: Env, tag: str, embed_one: Any, semcache_embedders: dict[str, Any],
                 gptcache_on_disk: bool = False) -> list[Any]:  # fmt: skip
    from benchmarks import _compare_systems as sy

    env.client.flushall()
    out: list[Any] = [
        sy.Semcache(name, env.url, config, semcache_embedders[name], f"cmp-{tag}-{i}")
        for i, (name, (config, _)) in enumerate(env.configs.items())
    ]
    out.append(sy.GPTCache("GPTCache", tempfile.mkdtemp(dir=env.shm), embed_one))
    if gptcache_on_disk:
        out.append(
            sy.GPTCache("GPTCache (sqlite on disk)", tempfile.mkdtemp(dir=env.tmp), embed_one)
        )
    out.append(sy.RedisVL("RedisVL", env.client, embed_one, f"cmp-{tag}-redisvl"))
    return out


# --- accuracy --------------------------------------------------------------------------------------


def run_pass(system: Any, groups: Sequence[ev.Group], thresholds: Sequence[float],
             tag: str) -> list[list[ev.Found]]:  # fmt: skip
    """Per group: a fresh scope holding its candidates, then the query at every threshold."""
    out = []
    for g in groups:
        scope = f"{tag}{g.key}"
        system.reset()
        for candidate in g.candidates:
            system.store(candidate, candidate, scope)
        out.append([system.lookup(g.query, scope, t) for t in thresholds])
    return out


def accuracy(system: Any, data: ev.Dataset) -> dict[str, Any]:
    scale, groups = system.scale, data.groups
    start = time.perf_counter()
    nearest = [row[0] for row in run_pass(system, groups, [scale.permissive], "a")]
    curve = ev.sweep(scale, groups, nearest)
    chosen: dict[str, float] = {"default": system.default}
    for target in ev.TARGETS:
        point = ev.matched(curve, target)
        if point is not None:
            chosen[f"p{target:.2f}"] = point.threshold
    live = run_pass(system, groups, list(chosen.values()), "b")
    rows = {}
    for i, (label, t) in enumerate(chosen.items()):
        answers = [r[i].answer for r in live]
        predicted = ev.predict(scale, nearest, t)
        rows[label] = {
            **ev.score(groups, answers, t, scale.to_cosine(t)).to_json(),
            "differs_from_sweep": sum(a != b for a, b in zip(answers, predicted, strict=True)),
        }
    return {
        "points": rows,
        "best_precision": ev.best_precision(curve),
        "curve": ev.compact(curve),
        "seconds": time.perf_counter() - start,
    }


def run_accuracy(env: Env, datasets: Sequence[ev.Dataset], table: Table) -> dict[str, Any]:
    out: dict[str, Any] = {}
    embedders = {
        name: table.embedder(f"{DEFAULT_MODEL_ID}#{i}") for i, name in enumerate(env.configs)
    }
    for data in datasets:
        systems = make_systems(env, "acc", table.one, embedders)
        out[data.name] = {"note": data.note, "pairs": data.pairs, "queries": len(data.groups),
                          "with_equivalent": sum(1 for g in data.groups if g.good), "systems": {}}  # fmt: skip
        for system in systems:
            result = accuracy(system, data)
            out[data.name]["systems"][system.name] = result
            print_accuracy_row(data.name, system.name, system.scale, result)
            system.close()
    return out


def print_accuracy_row(data: str, name: str, scale: ev.Scale, result: dict[str, Any]) -> None:
    parts = []
    for label, p in result["points"].items():
        prec = "-" if p["precision"] is None else f"{p['precision']:.3f}"
        parts.append(f"{label}: t={p['threshold']:.4f} (cos {p['cosine']:.4f}) P={prec} "
                     f"R={p['recall']:.3f} hit={p['hit_rate']:.3f} [{p['differs_from_sweep']} differ]")  # fmt: skip
    print(f"  {data:<22} {name:<22} " + " | ".join(parts) + f"  ({result['seconds']:.0f}s)")


# --- output ----------------------------------------------------------------------------------------


def conversions(env: Env) -> list[dict[str, Any]]:
    from benchmarks._compare_eval import COSINE, GPTCACHE, REDISVL

    rows = []
    for system, scale in (("semcache", COSINE), ("GPTCache", GPTCACHE), ("RedisVL", REDISVL)):
        rows.append({"system": system, "scale": scale.name, "to_cosine": scale.formula,
                     "default": scale.default, "default_cosine": scale.to_cosine(scale.default),
                     "latency_threshold": scale.from_cosine(LATENCY_COSINE)})  # fmt: skip
        print(f"  {system:<9} {scale.name:<40} {scale.formula:<36} default {scale.default} -> "
              f"cos {scale.to_cosine(scale.default):.3f}")  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--paws-pairs",
        type=int,
        default=None,
        help="a seeded sample of this many PAWS dev pairs (default: all 8,000)",
    )
    parser.add_argument("--entries", type=int, default=1000, help="entries stored for latency")
    parser.add_argument("--probes", type=int, default=200, help="lookups per probe kind")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--report", action="store_true", help="print the tables of --out and exit")
    parser.add_argument(
        "--speed",
        default="1000,100000",
        help="entry counts of the speed comparison with RedisVL (FLAT and HNSW)",
    )
    parser.add_argument("--stores", type=int, default=200, help="single stores per size (speed)")
    parser.add_argument(
        "--real",
        type=int,
        default=None,
        help="speed: embed only this many stored texts (and the probes' sources); "
        "the others get vectors drawn around them",
    )
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only the speed comparison; writes benchmarks/results/compare_speed.json",
    )
    args = parser.parse_args()  # fmt: skip
    if args.report:
        if args.speed_only:
            saved = json.loads((SPEED_RESULTS if args.out == RESULTS else args.out).read_text())
            print("\n\n".join(sp.report(r) for r in saved["speed"].values()))
            return
        print(markdown(json.loads(args.out.read_text(encoding="utf-8"))))
        return
    if args.quick:
        args.paws_pairs, args.entries, args.probes = args.paws_pairs or 300, 200, 30
        args.speed, args.stores = "1000", 50
    forbid_network()
    if args.speed_only:  # RedisVL alone (GPTCache has no place in it)
        run_speed_only(args)
        return
    require_bench_extra()
    started = time.time()
    load_before = os.getloadavg()

    pairs = ev.load_project_pairs()
    if args.quick:
        pairs = dataclasses.replace(pairs, groups=pairs.groups[:200])
    paws = ev.load_paws(SHARED / "paws-wiki-dev.tsv", args.paws_pairs)
    texts = latency_texts(args.entries, args.probes, paws)
    speed = speed_sets(args, [r[0] for r in ev.read_paws(SHARED / "paws-wiki-dev.tsv")])

    print("embedding every text once (the default OnnxEmbedder; cached on disk) ...", flush=True)
    bulk = semcache.OnnxEmbedder(threads=2, batch_size=64)
    t0 = time.perf_counter()
    own = datasets.load_pairs()
    paws_rows = ev.read_paws(SHARED / "paws-wiki-dev.tsv")
    rows: dict[str, np.ndarray] = {}
    for batch in (
        [p.query for p in own] + [p.candidate for p in own],
        [r[0] for r in paws_rows] + [r[1] for r in paws_rows],
        [*texts["stored"], *texts["warmup"], *(t for v in texts["probes"].values() for t in v)],
        speed_batch(speed),
    ):
        rows.update(embed_all(list(batch), bulk))
    table = Table(rows, bulk)
    print(f"  {len(table.rows):,} texts in {time.perf_counter() - t0:.0f}s")

    base = Path(tempfile.mkdtemp(prefix="semcache-compare-"))
    shm = Path(
        tempfile.mkdtemp(
            prefix="semcache-compare-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None
        )
    )
    # Registered first, so it runs last: after GPTCache's own atexit hooks close its files.
    atexit.register(shutil.rmtree, base, True)
    atexit.register(shutil.rmtree, shm, True)
    best = best_accuracy()
    best_name = (
        "semcache (best_accuracy preset)"
        if "best_accuracy()" in best[1]
        else "semcache (every guard check)"
    )
    configs = {"semcache (default)": (semcache.CacheConfig(), "CacheConfig()"), best_name: best}
    plain = plain_threshold()
    accuracy_configs = {**configs, **({"semcache (plain threshold)": plain} if plain else {})}
    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "args": vars(args) | {"out": str(args.out)},
    }

    with EmbeddedServer(base / "redis", persist=False, maxmemory="0") as server:
        env = Env(server.url, redis.Redis.from_url(server.url), base, shm, accuracy_configs)
        print("threshold scales, converted to cosine similarity:")
        result["conversions"] = conversions(env)
        systems = make_systems(
            env, "describe", table.one, {n: table.embedder(n) for n in accuracy_configs}
        )
        result["systems"] = {s.name: s.describe() for s in systems}
        result["semcache_configs"] = {n: how for n, (_, how) in accuracy_configs.items()}
        for s in systems:
            print(f"  {s.describe()}")
            s.close()

        print("accuracy (precomputed embeddings, the same vectors for every system):", flush=True)
        result["accuracy"] = run_accuracy(env, [pairs, paws], table)

        print("speed against RedisVL (FLAT and HNSW), embeddings precomputed:", flush=True)
        result["speed"] = run_speed(env, table, speed)

        env.configs = configs  # latency: the default and the best-accuracy configuration
        print("latency, embeddings precomputed:", flush=True)
        pre = {n: table.embedder(f"{DEFAULT_MODEL_ID}#{i}") for i, n in enumerate(configs)}
        systems = make_systems(env, "pre", table.one, pre, gptcache_on_disk=True)
        result["latency_precomputed"] = run_latency(
            systems, texts["stored"], texts["warmup"], texts["probes"]
        )
        for s in systems:
            s.close()

        print("latency, each system embeds with the model (OnnxEmbedder, 1 thread):", flush=True)
        peer = semcache.OnnxEmbedder()
        model = {"semcache (default)": None,  # semcache's own default: Batching(OnnxEmbedder())
                 best_name: semcache.Batching(semcache.OnnxEmbedder(
                     model_id=f"{DEFAULT_MODEL_ID}#best"))}  # fmt: skip
        systems = make_systems(env, "model", lambda text: peer.embed([text])[0], model)
        result["latency_model"] = run_latency(
            systems, texts["stored"], texts["warmup"], texts["probes"]
        )
        for s in systems:
            s.close()

    result["seconds"] = time.time() - started
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    ev.dump(args.out, result)
    print(markdown(result))
    print(f"wrote {args.out} in {result['seconds'] / 60:.1f} min")


# --- speed against RedisVL (FLAT and HNSW with semcache's parameters) -------------------------------


def speed_sets(args: argparse.Namespace, unrelated: list[str]) -> dict[int, dict[str, Any]]:
    sizes = [int(n) for n in str(args.speed).split(",") if n]
    return {n: sp.speed_texts(n, args.probes, unrelated, args.stores) for n in sizes}


def speed_batch(speed: dict[int, dict[str, Any]], real: int | None = None) -> list[str]:
    """Every text the speed comparison embeds, once (the largest size's include the others')."""
    return list(dict.fromkeys(t for texts in speed.values() for t in sp.all_texts(texts, real)))


def run_speed(env: Env, table: Table, speed: dict[int, dict[str, Any]]) -> dict[str, Any]:
    return {str(n): sp.run_size(env, table, n, texts) for n, texts in speed.items()}


def run_speed_only(args: argparse.Namespace) -> None:
    """The speed comparison alone (``--speed-only``): benchmarks/results/compare_speed.json."""
    started, load_before = time.time(), os.getloadavg()
    speed = speed_sets(args, [r[0] for r in ev.read_paws(SHARED / "paws-wiki-dev.tsv")])
    print("embedding every text once (the default OnnxEmbedder; cached on disk) ...", flush=True)
    bulk = semcache.OnnxEmbedder(threads=2, batch_size=64)
    rows = embed_all(speed_batch(speed, args.real), bulk)
    table = Table(rows | sp.drawn_rows(speed, rows), bulk)
    base = Path(tempfile.mkdtemp(prefix="semcache-compare-"))
    atexit.register(shutil.rmtree, base, True)
    result: dict[str, Any] = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
                              "args": vars(args) | {"out": str(args.out)},
                              "embedder": f"OnnxEmbedder ({bulk.model_id}), precomputed",
                              "real_vectors": args.real or "all"}  # fmt: skip
    with EmbeddedServer(base / "redis", persist=False, maxmemory="0") as server:
        env = Env(server.url, redis.Redis.from_url(server.url), base, base, {})
        result["speed"] = run_speed(env, table, speed)
    result["seconds"] = time.time() - started
    result["load_average"] = {"before": load_before, "after": os.getloadavg()}
    out = SPEED_RESULTS if args.out == RESULTS else args.out
    ev.dump(out, result)
    print(
        f"load average {load_before[0]:.1f} -> {os.getloadavg()[0]:.1f}; wrote {out} in "
        f"{result['seconds'] / 60:.1f} min"
    )


if __name__ == "__main__":
    main()
