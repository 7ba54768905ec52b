"""Calibration: the hit rate each decision configuration reaches at a target precision.

Given labelled pairs and their similarities, for the plain global threshold, the lexical guard,
the learned verifier inside its band, per-entry thresholds (an online labelled replay: each pair a
lookup of its query against its candidate, the candidate's evidence updated after every lookup)
and, when a judge is given, a second opinion for borderline candidates. Used by ``semcache tune --configs`` and
``benchmarks/bench_accuracy.py``. No I/O: the judge, if any, is called directly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from semcache.core.ops import call_directly, drive
from semcache.core.types import Entry
from semcache.decision.decide import GuardedDecision
from semcache.decision.guard import Guard
from semcache.decision.opinion import SecondOpinion
from semcache.decision.protocol import Candidate, Verdict
from semcache.decision.thresholds import RECORD, PerEntryThresholds, append, encode

_ENTRY = Entry(response={}, kind="chat", model="calibration")
STREAM_GRID = tuple(
    sorted(
        {round(0.7 + i * 0.01, 3) for i in range(30)}
        | {round(0.99 + i * 0.001, 3) for i in range(11)}
    )
)


@dataclass(frozen=True, slots=True)
class Calibration:
    """The best point of one configuration at the target precision (``reached`` False: the target
    was not reached and the point of highest precision is shown)."""

    configuration: str
    threshold: float
    precision: float | None
    recall: float
    f1: float
    hit_rate: float
    reached: bool
    judge_calls: float = 0.0
    """Judge calls per lookup at this point (second opinion only)."""

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def run(
    decision: Any, query: str, candidate: Candidate | Sequence[Candidate], threshold: float
) -> Verdict:
    """Drive a decision flow to its verdict on one candidate (or several, nearest first), calling
    any judge it asks for."""
    cands = [candidate] if isinstance(candidate, Candidate) else list(candidate)
    verdict: Verdict = drive(decision.decide(query, cands, threshold), call_directly, throw=False)
    return verdict


def _point(
    name: str,
    t: float,
    hits: npt.NDArray[np.bool_],
    labels: npt.NDArray[np.bool_],
    calls: float = 0.0,
) -> Calibration:
    tp, fp = int((hits & labels).sum()), int((hits & ~labels).sum())
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / max(1, int(labels.sum()))
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return Calibration(
        name, t, precision, recall, f1, (tp + fp) / max(1, len(labels)), False, calls
    )


def _best(points: Sequence[Calibration], target: float) -> Calibration:
    ok = [p for p in points if p.precision is not None and p.precision >= target]
    if ok:
        found = max(ok, key=lambda p: (p.hit_rate, -p.threshold))
        return Calibration(**{**found.to_json(), "reached": True})
    return max(points, key=lambda p: (p.precision or 0.0, p.hit_rate))


def passes(
    decision: Any, queries: Sequence[str], candidates: Sequence[str], sims: npt.NDArray[np.float64]
) -> npt.NDArray[np.bool_]:
    """Which pairs a decision's checks accept whatever the threshold."""
    return np.array([
        run(decision, q, Candidate(str(i), float(s), _ENTRY, c, {}), -1.0).accepted is not None
        for i, (q, c, s) in enumerate(zip(queries, candidates, sims, strict=True))
    ], dtype=bool)  # fmt: skip


def static(
    name: str,
    sims: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    ok: npt.NDArray[np.bool_],
    target: float,
) -> Calibration:
    """Every distinct similarity tried as the threshold: the exact best point."""
    order = np.argsort(-sims, kind="stable")
    s, y, a = sims[order], labels[order], ok[order]
    tp, fp = np.cumsum(y & a), np.cumsum(~y & a)
    last = np.r_[s[1:] != s[:-1], True]  # a threshold takes every pair at its similarity
    reach = last & (tp + fp > 0) & (tp >= target * (tp + fp))
    if not reach.any():
        grid = np.unique(np.round(sims, 3))
        return _best([_point(name, float(t), (sims >= t) & ok, labels) for t in grid], target)
    i = int(np.flatnonzero(reach)[np.argmax(tp[reach])])
    found = _point(name, round(float(s[i]), 4), (sims >= s[i]) & ok, labels)
    return Calibration(**{**found.to_json(), "reached": True})


def per_entry(
    name: str,
    decision: GuardedDecision,
    queries: Sequence[str],
    candidates: Sequence[str],
    sims: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    target: float,
    *,
    hits_only: bool = False,
    seed: int = 7,
) -> Calibration:
    """An online labelled replay in a fixed shuffled order at each threshold of a grid."""
    assert decision.per_entry is not None
    keep = RECORD * decision.per_entry.keep
    order = list(range(len(sims)))
    random.Random(seed).shuffle(order)
    points = []
    for t in STREAM_GRID:
        evidence: dict[str, str] = {}
        hits = np.zeros(len(sims), dtype=bool)
        for i in order:
            fb = evidence.get(candidates[i], "")
            cand = Candidate(str(i), float(sims[i]), _ENTRY, candidates[i], {"fb": fb})
            hits[i] = run(decision, queries[i], cand, t).accepted is not None
            if hits[i] or not hits_only:
                evidence[candidates[i]] = append(fb, encode(sims[i], bool(labels[i])), keep)
        points.append(_point(name, t, hits, labels))
    return _best(points, target)


def opinion(
    name: str,
    second: SecondOpinion,
    ok: npt.NDArray[np.bool_],
    queries: Sequence[str],
    candidates: Sequence[str],
    sims: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    target: float,
    grid: Sequence[float],
) -> Calibration:
    """A judge asked inside the band around each threshold of ``grid`` (asked once per pair)."""
    verdicts = np.array(
        [second.accepts(second.judge(q, c)) for q, c in zip(queries, candidates, strict=True)]
    )
    return _banded(name, second.band, ok, verdicts, sims, labels, target, grid)


def _banded(
    name: str,
    band: Callable[[float], tuple[float, float]],
    ok: npt.NDArray[np.bool_],
    accepted: npt.NDArray[np.bool_],
    sims: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    target: float,
    grid: Sequence[float],
) -> Calibration:
    """At each threshold: a pair the checks pass hits above its band, or inside it if accepted."""
    points = []
    for t in grid:
        low, high = band(t)
        asked = ok & (sims >= low) & (sims < high)
        hits = ok & ((sims >= high) | (asked & accepted))
        points.append(_point(name, t, hits, labels, float(asked.mean())))
    return _best(points, target)


def verified(
    name: str,
    verifier: Any,
    ok: npt.NDArray[np.bool_],
    queries: Sequence[str],
    candidates: Sequence[str],
    sims: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    target: float,
    grid: Sequence[float] = STREAM_GRID,
) -> Calibration:
    """The learned verifier asked inside its band around each threshold of ``grid``, as
    ``GuardedDecision`` asks it (each pair scored once, one pair at a time, as a lookup scores it)."""
    floor = min(verifier.band(t)[0] for t in grid)
    probs = np.zeros(len(sims))
    for i in map(int, np.flatnonzero(ok & (sims >= floor))):
        probs[i] = verifier.score(queries[i], [candidates[i]])[0]
    accepted = probs >= verifier.threshold
    return _banded(name, verifier.band, ok, accepted, sims, labels, target, grid)


def calibrate(
    queries: Sequence[str],
    candidates: Sequence[str],
    sims: npt.NDArray[np.float64],
    labels: npt.NDArray[np.bool_],
    *,
    target: float = 0.95,
    judge: Callable[[str, str], Any] | None = None,
    verifier: Any = None,
) -> list[Calibration]:
    """The hit rate at ``target`` precision of each configuration: global threshold, guard,
    guard + the learned verifier (the default decision) when a verifier is given, per-entry
    thresholds (delta = 1 - target), guard + per-entry, and guard + second opinion when a judge is
    given."""
    everything = np.ones(len(sims), dtype=bool)
    guarded = passes(GuardedDecision(guard=Guard()), queries, candidates, sims)
    rows = [static("global threshold", sims, labels, everything, target),
            static("guard", sims, labels, guarded, target)]  # fmt: skip
    if verifier is not None:
        rows.append(verified("guard + verifier (default)", verifier, guarded, queries, candidates,
                             sims, labels, target))  # fmt: skip
    bound = PerEntryThresholds(delta=round(1 - target, 4))
    for name, guard in (("per-entry thresholds", None), ("guard + per-entry thresholds", Guard())):
        decision = GuardedDecision(guard=guard, per_entry=bound)
        rows.append(per_entry(name, decision, queries, candidates, sims, labels, target))
    if judge is not None:
        grid = sorted(
            {round(0.5 + i * 0.0025, 4) for i in range(201)}
            | {round(0.99 + i * 0.0002, 4) for i in range(51)}
        )
        second = SecondOpinion(judge)
        rows.append(
            opinion(
                "guard + second opinion",
                second,
                guarded,
                queries,
                candidates,
                sims,
                labels,
                target,
                grid,
            )
        )
    return rows


def table(rows: Sequence[Calibration], target: float) -> str:
    """A text table of calibrations."""
    lines = [f"hit rate at precision >= {target} per configuration (* = not reached: best precision)",
             f"{'configuration':32} {'thr':>6} {'prec':>6} {'recall':>6} {'F1':>6} {'hits':>6}"]  # fmt: skip
    for r in rows:
        prec = f"{r.precision:.3f}" if r.precision is not None else "-"
        mark = " " if r.reached else "*"
        lines.append(
            f"{r.configuration:31}{mark} {r.threshold:6.3f} {prec:>6} {r.recall:6.3f} {r.f1:6.3f} {r.hit_rate:6.3f}"
        )
    return "\n".join(lines)
