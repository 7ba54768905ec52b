"""Fewer wrong answers: precision, recall, F1 and hit rate at a target precision, per check.

In one run, on two labelled sets:
- semcache's own pairs (``semcache/data/pairs.jsonl``: paraphrases next to hard negatives with a
  changed number, negation, unit, entity or order, in six languages);
- PAWS-Wiki dev (8,000 adversarial pairs, Zhang et al. 2019, Google LLC), read at run time from
  ``../shared/data`` (or ``--data DIR``), never copied into the repository.

Every configuration is the real :class:`semcache.GuardedDecision` (or the plain
:class:`semcache.ThresholdDecision`) deciding on each pair's candidate with all-MiniLM-L6-v2 cosine
similarity. For each one the global threshold is swept and the point with the most hits at
precision >= the target (0.95) is reported, with the decision's own cost per lookup (ms, embedding
excluded: it is the same for all).

- plain: one global threshold.
- guard sub-checks, one at a time; the default guard (every sub-check but ``sequence``); the
  default guard without each sub-check in turn (what each one adds); and with ``sequence``.
- per-entry thresholds: an online stream in a fixed shuffled order, each pair a lookup of its
  query against its candidate (the entry), the entry's evidence updated after every lookup, as a
  labelled replay does (``all feedback``), or after hits only (``hit feedback``: users flag wrong
  answers they were served); the wrong-answer bound is delta = 1 - target.
- second opinion: a simulated judge that agrees with the label 90% of the time (deterministic per
  pair), asked only inside the borderline band [t - 0.1, t + 0.05); its calls per lookup are the cost.

Then the learned verifier out of sample (``benchmarks/_bench_verifier.py``): QQP held-out
components in a shared index, PAWS cross-domain and the project's pairs, against the old default
and the plain threshold in the same run.

Usage: python benchmarks/bench_accuracy.py [--target 0.95] [--data DIR] [--verifier-only]
[--verifier DIR --out FILE] (another verifier artifact, e.g. a retrained one, into its own file)
(writes benchmarks/results/accuracy.json and prints the tables; ``--verifier-only`` runs the
verifier part and keeps the rest of the JSON from the last full run)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import semcache
from benchmarks import _bench_verifier as verifier
from benchmarks import _qqp
from semcache import Guard, GuardedDecision, PerEntryThresholds, SecondOpinion, ThresholdDecision
from semcache.core.types import Entry
from semcache.decision.calibrate import run
from semcache.decision.guard import CHECKS, features
from semcache.decision.protocol import Candidate
from semcache.decision.thresholds import RECORD, append, encode

RESULTS = Path(__file__).parent / "results" / "accuracy.json"
DEFAULT_DATA = _qqp.DEFAULT_DATA
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "semcache" / "bench"
GRID = sorted(
    {round(0.5 + i * 0.0025, 4) for i in range(201)}
    | {round(0.99 + i * 0.0002, 4) for i in range(51)}
)
STREAM_GRID = sorted(
    {round(0.7 + i * 0.01, 3) for i in range(30)} | {round(0.99 + i * 0.001, 3) for i in range(11)}
)
ENTRY = Entry(response={}, kind="chat", model="bench")


@dataclass
class Pairs:
    name: str
    queries: list[str]
    candidates: list[str]
    labels: np.ndarray
    sims: np.ndarray


def load_sets(data: Path) -> list[tuple[str, list[str], list[str], list[bool]]]:
    from semcache import datasets

    own = datasets.load_pairs()
    sets = [("semcache pairs", [p.query for p in own], [p.candidate for p in own],
             [p.equivalent for p in own])]  # fmt: skip
    paws = data / "paws-wiki-dev.tsv"
    if paws.exists():
        rows = [line.rstrip("\n").split("\t") for line in paws.open(encoding="utf-8")]
        rows = [r for r in rows if len(r) == 4 and r[3] in "01"]
        sets.append(("PAWS-Wiki dev", [r[1] for r in rows], [r[2] for r in rows],
                     [r[3] == "1" for r in rows]))  # fmt: skip
    else:
        print(f"PAWS not found at {paws}: skipped", file=sys.stderr)
    return sets


def embed_all(texts: list[str], embedder: semcache.Embedder) -> dict[str, np.ndarray]:
    """Embeddings of distinct texts, cached on disk by content (embedding PAWS takes minutes)."""
    unique = list(dict.fromkeys(texts))
    digest = hashlib.sha256("\n".join([embedder.model_id, *unique]).encode()).hexdigest()[:20]
    path = CACHE / f"{digest}.npy"
    if path.exists():
        rows = np.load(path)
    else:
        rows = np.vstack([embedder.embed(unique[i : i + 256]) for i in range(0, len(unique), 256)])
        CACHE.mkdir(parents=True, exist_ok=True)
        np.save(path, rows)
    return dict(zip(unique, rows, strict=True))


def score(
    name: str, q: list[str], c: list[str], labels: list[bool], emb: semcache.Embedder
) -> Pairs:
    vectors = embed_all(q + c, emb)
    sims = np.array([float(vectors[a] @ vectors[b]) for a, b in zip(q, c, strict=True)])
    return Pairs(name, q, c, np.array(labels, dtype=bool), sims)


# --- running the real decision ---------------------------------------------------------------------


def static_accepts(decision: Any, pairs: Pairs) -> tuple[np.ndarray, float]:
    """Which pairs the decision's checks let through whatever the threshold (it is set to -1 so
    only the checks decide), and the mean ms per decision (features read afresh: a new query)."""
    ok = np.zeros(len(pairs.sims), dtype=bool)
    features.cache_clear()
    start = time.perf_counter()
    for i, (q, c) in enumerate(zip(pairs.queries, pairs.candidates, strict=True)):
        ok[i] = (
            run(decision, q, Candidate(str(i), float(pairs.sims[i]), ENTRY, c, {}), -1.0).accepted
            is not None
        )
    return ok, (time.perf_counter() - start) * 1000 / len(ok)


def point(
    t: float, hits: np.ndarray, labels: np.ndarray, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    tp, fp = int((hits & labels).sum()), int((hits & ~labels).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / int(labels.sum())
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return {"threshold": t, "precision": precision, "recall": recall, "f1": f1,
            "hit_rate": (tp + fp) / len(labels), "true_hits": tp, "false_hits": fp, **(extra or {})}  # fmt: skip


def best(points: Sequence[dict[str, Any]], target: float) -> dict[str, Any]:
    ok = [p for p in points if p["precision"] is not None and p["precision"] >= target]
    if ok:
        return {**max(ok, key=lambda p: (p["true_hits"], -p["threshold"])), "reached": True}
    top = max(points, key=lambda p: (p["precision"] or 0.0, p["true_hits"]))
    return {**top, "reached": False}


def sweep_static(pairs: Pairs, ok: np.ndarray, target: float) -> dict[str, Any]:
    """Every distinct similarity is a threshold: the exact best point, not a grid's."""
    order = np.argsort(-pairs.sims, kind="stable")
    sims, labels, accepted = pairs.sims[order], pairs.labels[order], ok[order]
    tp, fp = np.cumsum(labels & accepted), np.cumsum(~labels & accepted)
    last = np.r_[sims[1:] != sims[:-1], True]  # a threshold takes every pair at its similarity
    reach = last & (tp + fp > 0) & (tp >= target * (tp + fp))
    i = int(np.flatnonzero(reach)[np.argmax(tp[reach])]) if reach.any() else None
    if i is None:
        return best([point(t, (pairs.sims >= t) & ok, pairs.labels) for t in GRID], target)
    return {
        **point(round(float(sims[i]), 4), (pairs.sims >= sims[i]) & ok, pairs.labels),
        "reached": True,
    }


# --- per-entry thresholds: an online stream ---------------------------------------------------------


def stream(
    pairs: Pairs, decision: GuardedDecision, t: float, order: list[int], all_feedback: bool
) -> dict[str, Any]:
    assert decision.per_entry is not None
    keep = RECORD * decision.per_entry.keep
    evidence: dict[str, str] = {}
    hits = np.zeros(len(order), dtype=bool)
    for i in order:
        entry = pairs.candidates[i]
        cand = Candidate(
            str(i), float(pairs.sims[i]), ENTRY, entry, {"fb": evidence.get(entry, "")}
        )
        hit = run(decision, pairs.queries[i], cand, t).accepted is not None
        hits[i] = hit
        if hit or all_feedback:
            evidence[entry] = append(
                evidence.get(entry, ""), encode(pairs.sims[i], bool(pairs.labels[i])), keep
            )
    return point(t, hits, pairs.labels)


def sweep_stream(
    pairs: Pairs, decision: GuardedDecision, target: float, all_feedback: bool
) -> dict[str, Any]:
    order = list(range(len(pairs.sims)))
    random.Random(7).shuffle(order)
    return best([stream(pairs, decision, t, order, all_feedback) for t in STREAM_GRID], target)


# --- second opinion --------------------------------------------------------------------------------


def noisy_judge(labels: dict[tuple[str, str], bool], accuracy: float) -> Callable[[str, str], bool]:
    def judge(query: str, candidate: str) -> bool:
        right = labels[(query, candidate)]
        coin = int(hashlib.sha256(f"{query}\x00{candidate}".encode()).hexdigest()[:8], 16) / 2**32
        return right if coin < accuracy else not right

    return judge


def sweep_opinion(
    pairs: Pairs, guard: Guard | None, target: float, accuracy: float = 0.9
) -> dict[str, Any]:
    labels = {
        (q, c): bool(y)
        for q, c, y in zip(pairs.queries, pairs.candidates, pairs.labels, strict=True)
    }
    opinion = SecondOpinion(noisy_judge(labels, accuracy), below=0.1, above=0.05)
    ok, _ = static_accepts(GuardedDecision(guard=guard), pairs)
    features.cache_clear()
    verdicts = np.array(
        [opinion.judge(q, c) for q, c in zip(pairs.queries, pairs.candidates, strict=True)]
    )
    points = []
    for t in GRID:
        low, high = opinion.band(t)
        asked = ok & (pairs.sims >= low) & (pairs.sims < high)
        hits = ok & ((pairs.sims >= high) | (asked & verdicts))
        points.append(point(t, hits, pairs.labels, {"judge_calls_per_lookup": float(asked.mean())}))
    found = best(points, target)
    decision = GuardedDecision(guard=guard, opinion=opinion)  # the real flow, for its cost
    start = time.perf_counter()
    for i, (q, c) in enumerate(zip(pairs.queries, pairs.candidates, strict=True)):
        run(decision, q, Candidate(str(i), float(pairs.sims[i]), ENTRY, c, {}), found["threshold"])
    found["ms_per_lookup"] = (time.perf_counter() - start) * 1000 / len(pairs.sims)
    return found


# --- the run ---------------------------------------------------------------------------------------


def configurations() -> list[tuple[str, Any]]:
    off = {name: False for name in CHECKS}
    rows: list[tuple[str, Any]] = [("plain threshold", ThresholdDecision())]
    rows += [
        (f"guard: {name} only", GuardedDecision(guard=Guard(**{**off, name: True})))
        for name in CHECKS
    ]
    rows += [("guard (default)", GuardedDecision(guard=Guard()))]
    rows += [(f"guard without {name}", GuardedDecision(guard=Guard(**{name: False})))
             for name in CHECKS if name != "sequence"]  # fmt: skip
    rows += [("guard + sequence", GuardedDecision(guard=Guard(sequence=True)))]
    return rows


def evaluate(pairs: Pairs, target: float) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, decision in configurations():
        if isinstance(decision, ThresholdDecision):
            ok, ms = np.ones(len(pairs.sims), dtype=bool), _plain_ms(pairs)
        else:
            ok, ms = static_accepts(decision, pairs)
        out[name] = {**sweep_static(pairs, ok, target), "ms_per_lookup": ms}
        print(f"  {pairs.name}: {name} done", file=sys.stderr)
    per_entry = PerEntryThresholds(delta=round(1 - target, 4))
    for name, guard in (("per-entry", None), ("guard + per-entry", Guard())):
        for feedback in ("all", "hit"):
            decision = GuardedDecision(guard=guard, per_entry=per_entry)
            start = time.perf_counter()
            found = sweep_stream(pairs, decision, target, feedback == "all")
            runs = len(STREAM_GRID) * len(pairs.sims)
            found["ms_per_lookup"] = (time.perf_counter() - start) * 1000 / runs
            out[f"{name} ({feedback} feedback)"] = found
            print(f"  {pairs.name}: {name} {feedback} done", file=sys.stderr)
    out["guard + second opinion (judge 90% right)"] = sweep_opinion(pairs, Guard(), target)
    out["second opinion alone (judge 90% right)"] = sweep_opinion(pairs, None, target)
    return out


def _plain_ms(pairs: Pairs) -> float:
    start = time.perf_counter()
    for i, (q, c) in enumerate(zip(pairs.queries, pairs.candidates, strict=True)):
        run(ThresholdDecision(), q, Candidate(str(i), float(pairs.sims[i]), ENTRY, c, {}), 0.9)
    return (time.perf_counter() - start) * 1000 / len(pairs.sims)


def table(results: dict[str, dict[str, dict[str, Any]]], target: float) -> str:
    head = f"{'set / configuration':58} {'thr':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'hits':>6} {'ms':>7}"
    lines = [
        f"hit rate at precision >= {target} (* = target not reached: best precision shown)",
        head,
    ]
    for name, rows in results.items():
        lines.append(f"{name}")
        for config, p in rows.items():
            mark = " " if p["reached"] else "*"
            prec = f"{p['precision']:.3f}" if p["precision"] is not None else "  -  "
            lines.append(f"  {config:55}{mark}{p['threshold']:6.3f} {prec:>6} {p['recall']:6.3f} "
                         f"{p['f1']:6.3f} {p['hit_rate']:6.3f} {p['ms_per_lookup']:7.4f}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target", type=float, default=0.95)
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SEMCACHE_DATA", DEFAULT_DATA))
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--verifier-only", action="store_true")
    parser.add_argument(
        "--verifier", type=Path, default=None, help="a verifier artifact folder (default: shipped)"
    )
    parser.add_argument(
        "--pair-sample",
        type=int,
        default=0,
        help="verifier rows: a seeded sample of this many pairs per set (0: all)",
    )
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    embedder = semcache.SentenceTransformerEmbedder()
    old = json.loads(args.out.read_text()) if args.verifier_only and args.out.exists() else {}
    results, checked = old.get("sets", {}), {}
    memo = verifier.memo(args.verifier)
    for name, q, c, labels in load_sets(args.data):
        pairs = score(name, q, c, labels, embedder)
        if not args.verifier_only:
            results[name] = evaluate(pairs, args.target)
        if name.startswith("PAWS") and verifier.saw_paws(memo):  # fitted on PAWS fit components
            name, pairs = f"{name} held-out (in-domain)", verifier.held_out(pairs, args.data)
        else:
            name = f"{name} (cross-domain)" if name.startswith("PAWS") else name
            pairs = verifier.subsample(pairs, args.pair_sample)
        checked[name] = verifier.per_pair(name, pairs, memo)
    checked = {"QQP held-out": verifier.qqp_shared(args.data, lambda t: embed_all(t, embedder), memo),
               **checked}  # fmt: skip
    print(table(results, args.target))
    print(verifier.table(checked))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"target_precision": args.target, "embedder": embedder.model_id, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "verifier": memo.model_id,
            "default_cutoff": semcache.CacheConfig().threshold,
            "verifier_band": [memo.below, memo.above], "verifier_accept": memo.threshold}  # fmt: skip
    body = {"meta": {**old.get("meta", {}), **meta}, "sets": results, "verifier": checked}
    args.out.write_text(json.dumps(body, indent=2) + "\n")


if __name__ == "__main__":
    main()
