"""The verifier's out-of-sample figures for ``benchmarks/bench_accuracy.py``.

- QQP held-out: the ``test`` components of ``qqp-train.tsv`` (``benchmarks/_qqp.py``; training
  and every choice of the verifier saw only ``fit`` and ``dev``), 4,000 pairs, half equivalent, in
  the shared-index protocol of ``benchmarks/_shared_index.py`` (brute-force cosine top-4 in numpy,
  no Redis; the decision is the real ``GuardedDecision`` the cache runs).
- PAWS-Wiki dev, each pair a lookup of its query against its own candidate: all of it
  (cross-domain) for a verifier trained without PAWS; for one trained on PAWS fit components
  (``benchmarks/_paws.py``), only the held-out ``test`` components (in-domain, and labelled so).
- The project's own pairs (never trained on), the same way.

Decisions compared, at cut-offs 0.85 / 0.90 / 0.95 / 0.98 and at the default: the new default
(guard + verifier), the verifier without the guard, the old default (guard), the plain threshold.
Verifier scores are computed once per pair in batches and served to the decision from memory
(``Verifier.memoised``), so a sweep costs one scoring pass; the decision code is unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _paws, _qqp
from benchmarks import _shared_index as shared
from semcache import CacheConfig, Guard, GuardedDecision, ThresholdDecision, Verifier
from semcache.core.types import Entry
from semcache.decision.calibrate import run
from semcache.decision.decide import Candidate
from semcache.decision.verifier import metadata

CUTOFFS = (0.85, 0.9, 0.95, 0.98)
PAIRS = 4000
_ENTRY = Entry(response={}, kind="chat", model="bench")


def memo(path: Path | None = None) -> Verifier:
    """The shipped verifier (or the artifact in ``path``), its scores served from memory."""
    return Verifier(path).memoised()


def calls(verdict: Any) -> int:
    return sum(1 for name, _ in verdict.checks if name == "verifier")


def decisions(memo: Verifier) -> dict[str, Any]:
    return {
        "new default (guard + verifier)": GuardedDecision(guard=Guard(), verifier=memo),
        "verifier without guard": GuardedDecision(verifier=memo),
        "old default (guard)": GuardedDecision(guard=Guard()),
        "plain threshold": ThresholdDecision(),
    }


def cutoffs() -> list[float]:
    default = CacheConfig().threshold
    return sorted({*CUTOFFS, default})


def qqp_shared(data: Path, vectors_of: Any, memo: Verifier) -> dict[str, Any]:
    rows = _qqp.read_qqp(data / "qqp-train.tsv")
    split = _qqp.split(rows)
    test = shared.sample(split.test, PAIRS, _qqp.SEED)
    vectors = vectors_of([t for a, b, _ in test for t in (a, b)])
    proto = shared.build("QQP held-out", test, vectors, _qqp.duplicates(rows),
                         classes=_qqp.duplicate_classes(rows))  # fmt: skip
    floor = min(cutoffs()) - memo.below
    memo.prefill([(q, proto.entries[j]) for i, q in enumerate(proto.queries)
                  for j, s in zip(proto.top[i], proto.sims[i], strict=True) if s >= floor])  # fmt: skip
    out: dict[str, Any] = {"pairs": len(test), "equivalent": int(proto.equivalent.sum()),
                           "protocol": "shared index, brute-force cosine top-4 (numpy, no Redis)"}  # fmt: skip
    for name, decision in decisions(memo).items():
        out[name] = {}
        for t in cutoffs():
            chosen, asked = shared.decide_all(proto, decision, t)
            extra = {"verifier_calls_per_lookup": round(asked / len(test), 4)}
            out[name][f"{t:.2f}"] = shared.metrics(proto, chosen, extra)
        print(f"  QQP held-out: {name} done", file=sys.stderr)
    out["frontier_chosen_on_the_test_set"] = frontier(proto, memo)
    return out


def frontier(proto: shared.Protocol, memo: Verifier, recall: float = 0.40) -> dict[str, Any]:
    """The most precise operating point with recall >= ``recall``, per count, over a grid of
    cut-offs (0.70-0.95), bands (cut-off + 0.10 / 0.20) and acceptance thresholds (0.50-0.98) of
    the shipped verifier with the guard, chosen on the held-out pairs themselves: an upper bound
    of what re-tuning this verifier could reach there, not a figure of the default."""
    floor = 0.70
    ok = shared.guard_passes(proto, Guard())
    probs = shared.verifier_scores(proto, memo.score, floor)  # scores the pairs it lacks
    rows = np.arange(len(proto.queries))
    best: dict[str, Any] = {}
    for cut in np.round(np.arange(floor, 0.951, 0.01), 2):
        for above in (0.10, 0.20):
            for accept in np.round(np.arange(0.50, 0.981, 0.02), 2):
                chosen = shared.simulate(proto, ok, probs, cut, min(cut + above, 0.9999), accept)
                hit = chosen >= 0
                if not hit.any():
                    continue
                pick = np.where(hit, chosen, 0)
                for count in ("strict", "lenient", "closure"):
                    good = hit & getattr(proto, count)[rows, pick]
                    p, r = good.sum() / hit.sum(), good.sum() / proto.equivalent.sum()
                    if r >= recall and p > best.get(count, {}).get("precision", -1):
                        best[count] = {"precision": round(float(p), 4), "recall": round(float(r), 4),
                                       "cutoff": float(cut), "band_above": above, "accept": float(accept)}  # fmt: skip
    return {"recall_at_least": recall, **best}


def subsample(pairs: Any, n: int, seed: int = 9) -> Any:
    """A seeded sample of n of bench_accuracy's ``Pairs`` (all when n is 0 or more than there are)."""
    if not n or n >= len(pairs.sims):
        return pairs
    import random
    from dataclasses import replace

    keep = sorted(random.Random(seed).sample(range(len(pairs.sims)), n))
    return replace(pairs, queries=[pairs.queries[i] for i in keep],
                   candidates=[pairs.candidates[i] for i in keep],
                   labels=pairs.labels[keep], sims=pairs.sims[keep])  # fmt: skip


def saw_paws(verifier: Verifier) -> bool:
    """Whether the verifier was trained on PAWS (its fit components), from its metadata."""
    return "paws-wiki-dev.tsv" not in metadata(verifier.path)["data"]["not_used"]


def held_out(pairs: Any, data: Path) -> Any:
    """The PAWS ``test`` components of bench_accuracy's PAWS ``Pairs`` (``benchmarks/_paws.py``:
    the verifier was fitted on other PAWS components and its band chosen on the ``dev`` ones)."""
    from dataclasses import replace

    test = {(a, b) for a, b, _ in _paws.split(data).test}
    keep = [
        i for i, qc in enumerate(zip(pairs.queries, pairs.candidates, strict=True)) if qc in test
    ]
    return replace(pairs, name=f"{pairs.name} held-out", queries=[pairs.queries[i] for i in keep],
                   candidates=[pairs.candidates[i] for i in keep],
                   labels=pairs.labels[keep], sims=pairs.sims[keep])  # fmt: skip


def per_pair(name: str, pairs: Any, memo: Verifier) -> dict[str, Any]:
    """Each pair's query against its own candidate (``pairs`` is bench_accuracy's ``Pairs``)."""
    floor = min(cutoffs()) - memo.below
    memo.prefill([(q, c) for q, c, s in zip(pairs.queries, pairs.candidates, pairs.sims, strict=True)
                  if s >= floor])  # fmt: skip
    out: dict[str, Any] = {"pairs": len(pairs.sims), "equivalent": int(pairs.labels.sum())}
    for label, decision in decisions(memo).items():
        out[label] = {}
        for t in cutoffs():
            verdicts = [run(decision, q, Candidate(str(i), float(s), _ENTRY, c, {}), t)
                        for i, (q, c, s) in enumerate(zip(pairs.queries, pairs.candidates, pairs.sims, strict=True))]  # fmt: skip
            hits = np.array([v.accepted is not None for v in verdicts])
            asked = sum(calls(v) for v in verdicts)
            tp, fp = int((hits & pairs.labels).sum()), int((hits & ~pairs.labels).sum())
            out[label][f"{t:.2f}"] = {
                "precision": round(tp / (tp + fp), 4) if tp + fp else None,
                "recall": round(tp / max(1, int(pairs.labels.sum())), 4),
                "false_hit_rate": round(fp / max(1, int((~pairs.labels).sum())), 4),
                "hits": tp + fp,
                "verifier_calls_per_lookup": round(asked / len(hits), 4),
            }
        print(f"  {name}: {label} done", file=sys.stderr)
    return out


def table(results: dict[str, Any]) -> str:
    default = f"{CacheConfig().threshold:.2f}"
    lines = [f"verifier, out of sample (default cut-off {default})",
             f"{'set / decision @ cut-off':52} {'prec':>6} {'recall':>6} {'false':>6} {'calls':>6}"]  # fmt: skip
    for name, rows in results.items():
        lines.append(name)
        for decision, points in rows.items():
            if decision.startswith("frontier"):
                lines += [f"  best at recall >= {points['recall_at_least']} ({count}, chosen on "
                          f"these pairs): {b['precision']:.3f} / {b['recall']:.3f} at cut-off "
                          f"{b['cutoff']:.2f}, accept {b['accept']:.2f}"
                          for count, b in points.items() if isinstance(b, dict)]  # fmt: skip
                continue
            if not isinstance(points, dict):
                continue
            for t, m in points.items():
                for count in ("strict", "lenient", "closure") if "strict" in m else ("",):
                    p = m[count] if count else m
                    prec = f"{p['precision']:.3f}" if p["precision"] is not None else "  -  "
                    label = f"  {decision} @ {t}{' ' + count if count else ''}"
                    lines.append(f"{label:52} {prec:>6} {p['recall']:6.3f} {p['false_hit_rate']:6.3f} "
                                 f"{m['verifier_calls_per_lookup']:6.3f}")  # fmt: skip
    return "\n".join(lines)
