"""The embedding runtime: ONNX Runtime (the default) against sentence-transformers on torch.

In one run, on the same all-MiniLM-L6-v2 weights:
- agreement: mean and min cosine between the two runtimes' embeddings of 500 varied texts (the
  project's labelled pairs, intents and sample log; PAWS, Quora and GPTCache's paraphrases from
  /work/shared/data), whether any text's nearest neighbour changes, and whether any decision on
  ``semcache/data/pairs.jsonl`` changes at a sweep of thresholds around the default;
- one short text, p50/p99, both runtimes interleaved in one loop on 1 thread (ratio ONNX / torch);
- batch throughput (texts/s) of the 500 texts on 1 and 2 threads;
- the first lookup of a fresh process (a subprocess: import semcache, ``Cache()``, one lookup that
  misses and embeds), against an already-running Redis, for each runtime, interleaved.

Usage: HF_HUB_OFFLINE=1 python benchmarks/bench_embed.py [--quick] [--only PART ...]
(writes benchmarks/results/embed.json; needs the ``torch`` extra for the reference runtime)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from semcache import datasets
from semcache.server import EmbeddedServer

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).parent / "results" / "embed.json"
SHARED = Path(os.environ.get("SEMCACHE_SHARED_DATA", "/work/shared/data"))
THRESHOLDS = (0.80, 0.85, 0.88, 0.90, 0.92, 0.95)


def varied_texts(n: int = 500, seed: int = 11) -> list[str]:
    """n distinct texts: a fifth from each of five sources, short questions to long sentences."""
    rng = random.Random(seed)
    pairs = datasets.load_pairs()
    ours = [p.query for p in pairs] + [p.candidate for p in pairs]
    ours += [text for intent in datasets.load_intents() for text in intent["texts"]]
    sources = [ours, _column(SHARED / "paws-wiki-dev.tsv", 1), _column(SHARED / "qqp-train.tsv", 0)]
    sources.append(
        [p["origin"] for p in json.loads(_read(SHARED / "gptcache-mock-paraphrases.json"))]
    )
    sources.append(_sample_log_texts())
    out: dict[str, None] = {}
    per = n // len(sources)
    for source in sources:
        pool = sorted(set(source) - set(out))
        out.update(dict.fromkeys(rng.sample(pool, min(per, len(pool)))))
    rest = sorted({t for s in sources for t in s} - set(out))
    out.update(dict.fromkeys(rng.sample(rest, n - len(out))))
    return list(out)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _column(path: Path, index: int) -> list[str]:
    rows = (line.split("\t") for line in _read(path).splitlines())  # quotes are text here, not CSV
    return [row[index].strip() for row in rows if len(row) > index and row[index].strip()]


def _sample_log_texts() -> list[str]:
    texts = []
    for line in _read(datasets.sample_log_path()).splitlines():
        for message in json.loads(line)["request"].get("messages", []):
            if message.get("role") == "user" and isinstance(message.get("content"), str):
                texts.append(message["content"])
    return texts


def agreement(onnx: Any, torch: Any, texts: list[str]) -> dict[str, Any]:
    a, b = onnx.embed(texts), torch.embed(texts)
    cos = np.sum(a * b, axis=1)
    return {
        "texts": len(texts),
        "mean_cosine": float(cos.mean()),
        "min_cosine": float(cos.min()),
        "nearest_neighbour_changes": _neighbour_changes(a, b),
        "max_abs_similarity_change": float(np.abs(a @ a.T - b @ b.T).max()),
    }


def _neighbour_changes(a: np.ndarray, b: np.ndarray) -> int:
    sa, sb = a @ a.T, b @ b.T
    np.fill_diagonal(sa, -2.0)
    np.fill_diagonal(sb, -2.0)
    return int((sa.argmax(axis=1) != sb.argmax(axis=1)).sum())


def decisions(onnx: Any, torch: Any) -> dict[str, Any]:
    """Threshold decisions on the labelled pairs under each runtime's similarities."""
    pairs = datasets.load_pairs()
    sims = {}
    for name, emb in (("onnx", onnx), ("torch", torch)):
        q, c = emb.embed([p.query for p in pairs]), emb.embed([p.candidate for p in pairs])
        sims[name] = np.sum(q * c, axis=1)
    changed = {
        f"{t:.2f}": int(((sims["onnx"] >= t) != (sims["torch"] >= t)).sum()) for t in THRESHOLDS
    }
    return {
        "pairs": len(pairs),
        "decisions_changed_by_threshold": changed,
        "max_abs_similarity_change": float(np.abs(sims["onnx"] - sims["torch"]).max()),
    }


def single_text(onnx: Any, torch: Any, n: int) -> dict[str, Any]:
    """One short text per call, the two runtimes alternating in one loop (same load for both)."""
    texts = [f"How do I reset the password of account {i}?" for i in range(n)]
    times: dict[str, list[float]] = {"onnx": [], "torch": []}
    for i, text in enumerate(texts):
        order = (("onnx", onnx), ("torch", torch)) if i % 2 else (("torch", torch), ("onnx", onnx))
        for name, emb in order:
            start = time.perf_counter()
            emb.embed([text])
            times[name].append((time.perf_counter() - start) * 1000)
    row = {name: _pcts(samples) for name, samples in times.items()}
    row["p50_ratio_onnx_to_torch"] = row["onnx"]["p50_ms"] / row["torch"]["p50_ms"]
    row["p99_ratio_onnx_to_torch"] = row["onnx"]["p99_ms"] / row["torch"]["p99_ms"]
    return row


def _pcts(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": float(np.percentile(samples, 50)),
        "p99_ms": float(np.percentile(samples, 99)),
    }


def throughput(texts: list[str], threads: int, rounds: int) -> dict[str, Any]:
    runtimes = {
        "onnx": semcache.OnnxEmbedder(threads=threads).load(),
        "torch": semcache.SentenceTransformerEmbedder(threads=threads),
    }
    runtimes["torch"].embed(texts[:2])  # load outside the timing
    best: dict[str, float] = {}
    for _ in range(rounds):
        for name, emb in runtimes.items():
            start = time.perf_counter()
            emb.embed(texts)
            rate = len(texts) / (time.perf_counter() - start)
            best[name] = max(best.get(name, 0.0), rate)
    return {
        "threads": threads,
        "texts_per_s": best,
        "ratio_onnx_to_torch": best["onnx"] / best["torch"],
    }


FIRST_LOOKUP = """
import time
start = time.perf_counter()
import uuid, semcache
imported = time.perf_counter() - start
embedder = None
if RUNTIME == "torch":
    embedder = semcache.Batching(semcache.SentenceTransformerEmbedder())
cache = semcache.Cache(redis_url=URL, namespace="bench-first", embedder=embedder)
text = "How do I reset my password? " + uuid.uuid4().hex
result = cache.lookup({"model": "m", "messages": [{"role": "user", "content": text}]})
elapsed = time.perf_counter() - start
assert result.layer is None and result.embedded, result
print(elapsed, time.process_time(), imported, time.time())
"""


def first_lookup(
    url: str, runs: int, runtimes: tuple[str, ...] = ("onnx", "torch")
) -> dict[str, Any]:
    """Seconds from the start of a fresh process to its first lookup's result (a miss that embeds):
    from the process's first line (``median_s``), and from its spawn (``median_spawn_to_result_s``:
    the interpreter's start included, its exit not; ``median_with_interpreter_start_s`` is spawn to
    exit, which adds the interpreter's teardown of every module, ~0.1-0.2 s here, after the result).

    Also the process's CPU seconds at that point (interpreter start included): on a machine whose
    cores are taken by other jobs the wall time stretches, the CPU time much less.
    """
    samples: dict[str, list[tuple[float, ...]]] = {runtime: [] for runtime in runtimes}
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    for i in range(runs):
        for runtime in runtimes if i % 2 else runtimes[::-1]:
            code = f"URL, RUNTIME = {url!r}, {runtime!r}\n" + FIRST_LOOKUP
            spawned, start = time.time(), time.perf_counter()
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                 text=True, check=True)  # fmt: skip
            wall = time.perf_counter() - start
            *numbers, result_at = (float(x) for x in out.stdout.strip().splitlines()[-1].split())
            samples[runtime].append((*numbers, result_at - spawned, wall))
    row: dict[str, Any] = {"runs": runs}
    for runtime, rows in samples.items():
        elapsed, cpu, imported, to_result, wall = (
            np.array(column) for column in zip(*rows, strict=True)
        )
        row[runtime] = {
            "median_s": float(np.median(elapsed)),
            "max_s": float(elapsed.max()),
            "median_cpu_s": float(np.median(cpu)),
            "median_import_semcache_s": float(np.median(imported)),
            "median_spawn_to_result_s": float(np.median(to_result)),
            "max_spawn_to_result_s": float(to_result.max()),
            "median_with_interpreter_start_s": float(np.median(wall)),
        }
    if len(runtimes) == 2:
        row["ratio_onnx_to_torch"] = row["onnx"]["median_s"] / row["torch"]["median_s"]
        row["cpu_ratio_onnx_to_torch"] = row["onnx"]["median_cpu_s"] / row["torch"]["median_cpu_s"]
    return row


PARTS = ("agreement", "decisions", "single_text", "batch", "first_lookup")


def run_part(part: str, quick: bool, texts: list[str], runtimes: tuple[Any, Any]) -> Any:
    if part == "agreement":
        return agreement(*runtimes, texts)
    if part == "decisions":
        return decisions(*runtimes)
    if part == "single_text":
        return single_text(*runtimes, 100 if quick else 400)
    if part == "batch":
        return [throughput(texts, t, 1 if quick else 3) for t in (1, 2)]
    with tempfile.TemporaryDirectory() as tmp, EmbeddedServer(tmp, persist=False) as server:
        return first_lookup(server.url, 2 if quick else 5)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--only", nargs="+", choices=PARTS, help="rerun these parts, keep the rest")
    args = parser.parse_args()
    parts = args.only or PARTS
    result: dict[str, Any] = json.loads(RESULTS.read_text()) if args.only else {}
    result["machine"] = f"{platform.machine()} {platform.system()}, {platform.python_version()}, "
    result["machine"] += f"{os.cpu_count()} cores"
    texts = varied_texts()
    runtimes = (semcache.OnnxEmbedder().load(), semcache.SentenceTransformerEmbedder())
    runtimes[1].embed(texts[:2])  # load outside the timings
    for part in parts:
        before = os.getloadavg()
        row = run_part(part, args.quick, texts, runtimes)
        after = os.getloadavg()
        result[part] = row
        result.setdefault("runs", {})[part] = {
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "load_average_1min": [round(before[0], 2), round(after[0], 2)],
        }
        _show(f"{part} (load average {before[0]:.2f} -> {after[0]:.2f})", row)
    result.pop("load_average", None)
    result.pop("date", None)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


def _show(title: str, row: Any) -> None:
    print(f"{title}: {json.dumps(row, default=float)}")


if __name__ == "__main__":
    main()
