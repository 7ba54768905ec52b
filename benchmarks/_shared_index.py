"""The shared-index protocol: every pair's first question is an entry of one index, every second
question a lookup, through the real decision code. No Redis: brute-force cosine top-k in numpy.

A hit is right (``strict``) only if it returns its own pair's entry and the pair is equivalent; the
``lenient`` count also takes an entry whose question is a labelled duplicate of the query (or the
same question): Quora repeats questions across pairs, and serving such an entry's answer is right.
The ``closure`` count takes Quora's duplicate labels as the equivalence they are: also right when
a chain of labelled duplicates links the entry's question to the query (A = B and B = C: A = C).

- precision = right hits / hits; recall = right hits / equivalent pairs
- false-hit rate = wrong hits / lookups; ``false_hits_on_negatives`` = wrong hits on queries whose
  pair is not equivalent / those queries
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks._qqp import Pair, normalise
from semcache.core.types import Entry
from semcache.decision.decide import Candidate
from semcache.decision.guard import Guard

_ENTRY = Entry(response={}, kind="chat", model="bench")


@dataclass
class Protocol:
    name: str
    queries: list[str]
    entries: list[str]
    equivalent: np.ndarray
    top: np.ndarray
    """(lookups, k) entry indices, nearest first."""
    sims: np.ndarray
    """(lookups, k) their cosine similarities."""
    strict: np.ndarray
    """(lookups, k) the candidate is the query's own equivalent entry."""
    lenient: np.ndarray
    """(lookups, k) strict, or a labelled duplicate of the query, or the same question."""
    closure: np.ndarray
    """(lookups, k) lenient, or linked to the query by a chain of labelled duplicates."""


def sample(pairs: Sequence[Pair], n: int, seed: int) -> list[Pair]:
    """n pairs, half equivalent (seeded), such that no lookup's question is also a stored entry's
    question: that lookup would be an exact repeat (the exact layer's job, a similarity of 1 here),
    not a test of the semantic decision."""
    import random

    rng = random.Random(seed)
    out: list[Pair] = []
    entries: set[str] = set()
    queries: set[str] = set()
    for want in (True, False):
        pool = [p for p in pairs if p[2] is want]
        rng.shuffle(pool)
        taken = 0
        for a, b, y in pool:
            na, nb = normalise(a), normalise(b)
            if taken < n // 2 and na not in queries and nb not in entries and nb not in queries:
                out.append((a, b, y))
                entries.add(na)
                queries.add(nb)
                taken += 1
    rng.shuffle(out)
    return out


def build(
    name: str,
    pairs: Sequence[Pair],
    vectors: dict[str, np.ndarray],
    dups: set[tuple[str, str]],
    k: int = 4,
    classes: dict[str, str] | None = None,
) -> Protocol:
    """The protocol over ``pairs``; ``classes`` (normalised question -> its duplicate class, from
    :func:`benchmarks._qqp.duplicate_classes`) adds the ``closure`` count (else it is ``lenient``)."""
    entries = [a for a, _, _ in pairs]
    queries = [b for _, b, _ in pairs]
    ev = np.vstack([vectors[t] for t in entries]).astype(np.float32)
    qv = np.vstack([vectors[t] for t in queries]).astype(np.float32)
    sims = qv @ ev.T
    top = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    top_sims = np.take_along_axis(sims, top, axis=1)
    equivalent = np.array([y for _, _, y in pairs], dtype=bool)
    own = top == np.arange(len(pairs))[:, None]
    strict = own & equivalent[:, None]
    nq = [normalise(q) for q in queries]
    ne = [normalise(e) for e in entries]
    linked = classes or {}  # without classes a question is linked only to itself: lenient's own
    group = [linked.get(q, q) for q in nq]
    lenient, closure = strict.copy(), strict.copy()
    for i in range(len(pairs)):
        for j in range(k):
            e = ne[top[i, j]]
            lenient[i, j] |= e == nq[i] or (nq[i], e) in dups
            closure[i, j] = lenient[i, j] or linked.get(e, e) == group[i]
    return Protocol(name, queries, entries, equivalent, top, top_sims, strict, lenient, closure)


def candidates(p: Protocol, i: int) -> list[Candidate]:
    return [
        Candidate(str(j), float(s), _ENTRY, p.entries[j], {})
        for j, s in zip(p.top[i], p.sims[i], strict=True)
    ]


def drive(decision: Any, query: str, cands: Sequence[Candidate], threshold: float) -> Any:
    """The decision's verdict (it is the same flow the cache runs; no Call is expected)."""
    from semcache.decision.calibrate import run

    return run(decision, query, cands, threshold)


def decide_all(p: Protocol, decision: Any, threshold: float) -> tuple[np.ndarray, int]:
    """Which of the top-k each lookup accepted (-1: none), through the real decision code, and how
    many verifier checks were made."""
    chosen = np.full(len(p.queries), -1)
    calls = 0
    for i, q in enumerate(p.queries):
        verdict = drive(decision, q, candidates(p, i), threshold)
        calls += sum(1 for name, _ in verdict.checks if name == "verifier")
        if verdict.accepted is not None:
            chosen[i] = list(p.top[i]).index(int(verdict.accepted.digest))
    return chosen, calls


def metrics(p: Protocol, chosen: np.ndarray, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    hit = chosen >= 0
    rows = np.arange(len(chosen))
    pick = np.where(hit, chosen, 0)
    out: dict[str, Any] = {"lookups": len(chosen), "hits": int(hit.sum())}
    for count, right in (("strict", p.strict), ("lenient", p.lenient), ("closure", p.closure)):
        good = hit & right[rows, pick]
        wrong = hit & ~good
        out[count] = {
            "precision": round(float(good.sum() / hit.sum()), 4) if hit.any() else None,
            "recall": round(float(good.sum() / p.equivalent.sum()), 4),
            "false_hit_rate": round(float(wrong.sum() / len(chosen)), 4),
            "false_hits_on_negatives": round(float((wrong & ~p.equivalent).sum() / (~p.equivalent).sum()), 4),
            "right_hits": int(good.sum()),
            "wrong_hits": int(wrong.sum()),
        }  # fmt: skip
    # What the lenient count's wrong hits are: another entry served to a query whose own pair is
    # labelled equivalent (that entry may well be a duplicate Quora never labelled), its own entry
    # served while the pair is labelled not equivalent, or another entry for such a query.
    wrong = hit & ~p.lenient[rows, pick]
    own = p.top[rows, pick] == rows
    out["lenient"]["wrong_hits_by_kind"] = {
        "other_entry_query_has_an_equivalent": int((wrong & ~own & p.equivalent).sum()),
        "own_entry_labelled_not_equivalent": int((wrong & own).sum()),
        "other_entry_query_has_none": int((wrong & ~own & ~p.equivalent).sum()),
    }
    return {**out, **(extra or {})}


def guard_passes(p: Protocol, guard: Guard | None) -> np.ndarray:
    """(lookups, k): the guard lets the candidate through (all True when there is no guard)."""
    if guard is None:
        return np.ones(p.top.shape, dtype=bool)
    return np.array(
        [[guard.check(q, p.entries[j]) is None for j in row] for q, row in zip(p.queries, p.top, strict=True)]
    )  # fmt: skip


def verifier_scores(
    p: Protocol, score: Callable[[str, list[str]], list[float]], floor: float
) -> np.ndarray:
    """(lookups, k) verifier probabilities for candidates at or above ``floor`` (NaN below)."""
    out = np.full(p.top.shape, np.nan)
    for i, q in enumerate(p.queries):
        keep = [j for j in range(p.top.shape[1]) if p.sims[i, j] >= floor]
        if keep:
            out[i, keep] = score(q, [p.entries[p.top[i, j]] for j in keep])
    return out


def simulate(
    p: Protocol, guard_ok: np.ndarray, probs: np.ndarray, low: float, high: float, accept: float
) -> np.ndarray:
    """What GuardedDecision(guard, verifier) picks with band [low, high) (vectorised, for sweeps;
    the chosen point is confirmed through :func:`decide_all`)."""
    chosen = np.full(len(p.queries), -1)
    open_ = np.ones(len(p.queries), dtype=bool)
    for j in range(p.top.shape[1]):
        s = p.sims[:, j]
        open_ &= s >= low
        in_band = s < high
        ok = guard_ok[:, j] & (~in_band | (np.nan_to_num(probs[:, j], nan=0.0) >= accept))
        take = open_ & ok & (chosen < 0)
        chosen[take] = j
    return chosen
