"""The accuracy protocol of ``benchmarks/compare.py``: labelled data, scales and metrics. No I/O
beyond reading the data files, and no dependency on the systems compared (tests import this).

Protocol. Pairs are grouped by their query. Each group gets a scope of its own, holding the group's
candidates (one cached entry each); the query is looked up in that scope, and the system returns
whatever entry it finds nearest or nothing. A hit on a candidate labelled equivalent is a true hit;
a hit on any other candidate is a false hit (a wrong answer served). So a query with one paraphrase
and two near-duplicates that differ in meaning is answered right only if the system picks the
paraphrase.

- precision = true hits / hits
- recall = true hits / queries that have an equivalent candidate
- hit rate = hits / queries
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._qqp import read_paws

TARGETS = (0.95, 0.90)
#: The sweep, in cosine similarity; each system sweeps the same points converted to its own scale.
COSINE_GRID = tuple(round(i * 0.0025, 4) for i in range(401))


@dataclass(frozen=True, slots=True)
class Group:
    """One query and the candidates stored for it."""

    key: str
    query: str
    candidates: tuple[str, ...]
    good: frozenset[str]
    """The candidates whose cached answer is right for the query."""


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    groups: tuple[Group, ...]
    pairs: int
    note: str = ""

    def texts(self) -> list[str]:
        return list(dict.fromkeys(t for g in self.groups for t in (g.query, *g.candidates)))


def group_pairs(name: str, pairs: Iterable[tuple[str, str, bool]], note: str = "") -> Dataset:
    """Group ``(query, candidate, equivalent)`` pairs by query; a candidate labelled both ways
    for one query (label noise) counts as not equivalent."""
    labels: dict[str, dict[str, bool]] = defaultdict(dict)
    count = 0
    for query, candidate, equivalent in pairs:
        count += 1
        seen = labels[query].get(candidate)
        labels[query][candidate] = equivalent if seen is None else (seen and equivalent)
    groups = tuple(
        Group(f"g{i}", q, tuple(cands), frozenset(c for c, ok in cands.items() if ok))
        for i, (q, cands) in enumerate(labels.items())
    )
    return Dataset(name, groups, count, note)


def load_project_pairs() -> Dataset:
    from semcache import datasets

    pairs = datasets.load_pairs()
    return group_pairs(
        "semcache pairs.jsonl",
        ((p.query, p.candidate, p.equivalent) for p in pairs),
        "the project's labelled pairs, all of them",
    )


def load_paws(path: Path, sample: int | None, seed: int = 9) -> Dataset:
    """PAWS-Wiki dev pairs; ``sample``: a seeded sample of that many pairs (the same for every
    system), None for all."""
    rows = read_paws(path)
    total = len(rows)
    if sample is not None and sample < total:
        rows = random.Random(seed).sample(rows, sample)
        note = f"a seeded sample (seed {seed}) of {sample:,} of the {total:,} dev pairs"
    else:
        note = f"all {total:,} dev pairs"
    return group_pairs("PAWS-Wiki dev", rows, note)


# --- scales ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scale:
    """A system's own threshold scale and its conversion to cosine similarity."""

    name: str
    formula: str
    to_cosine: Callable[[float], float]
    from_cosine: Callable[[float], float]
    higher_is_closer: bool
    default: float
    permissive: float
    """The threshold at which the nearest candidate always hits (to read its score)."""

    def passes(self, score: float, threshold: float) -> bool:
        eps = 1e-6  # float32 scores against float64 thresholds
        return score >= threshold - eps if self.higher_is_closer else score <= threshold + eps


COSINE = Scale(
    "semcache threshold (cosine similarity)",
    "cos = threshold",
    lambda t: t,
    lambda c: c,
    higher_is_closer=True,
    default=0.9,
    permissive=-1.0,
)

# GPTCache 0.1.44, sqlite + faiss, SearchDistanceEvaluation(max_distance=4.0, positive=False):
# faiss IndexFlat(METRIC_L2) returns the *squared* L2 distance d2 of the normalised vectors, and
# d2 = 2 - 2cos; the evaluation scores 4 - d2 = 2 + 2cos in [0, 4]; the adapter hits when
# score >= (4 - 0) * similarity_threshold. So a hit needs 2 + 2cos >= 4t, i.e. cos >= 2t - 1.
GPTCACHE = Scale(
    "GPTCache similarity_threshold t",
    "cos = 2t - 1  (t = (cos + 1) / 2)",
    lambda t: 2 * t - 1,
    lambda c: (c + 1) / 2,
    higher_is_closer=True,
    default=0.8,
    permissive=0.0,
)

# RedisVL SemanticCache: a RediSearch COSINE vector field; its distance is 1 - cos (0..2), and a
# hit needs vector_distance <= distance_threshold d. So cos >= 1 - d.
REDISVL = Scale(
    "RedisVL distance_threshold d",
    "cos = 1 - d  (d = 1 - cos)",
    lambda d: 1 - d,
    lambda c: 1 - c,
    higher_is_closer=False,
    default=0.1,
    permissive=2.0,
)


# --- metrics ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """What one lookup returned: the answer (None on a miss) and the system's own score of it."""

    answer: str | None
    score: float | None = None


@dataclass(frozen=True, slots=True)
class Point:
    threshold: float
    cosine: float
    precision: float | None
    recall: float
    hit_rate: float
    true_hits: int
    false_hits: int
    queries: int

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def score(groups: Sequence[Group], answers: Sequence[str | None], threshold: float,
          cosine: float) -> Point:  # fmt: skip
    """Precision, recall and hit rate of one answer (or None) per group."""
    true = sum(1 for g, a in zip(groups, answers, strict=True) if a is not None and a in g.good)
    hits = sum(1 for a in answers if a is not None)
    positives = sum(1 for g in groups if g.good)
    return Point(
        threshold=threshold,
        cosine=cosine,
        precision=true / hits if hits else None,
        recall=true / positives if positives else 0.0,
        hit_rate=hits / len(groups) if groups else 0.0,
        true_hits=true,
        false_hits=hits - true,
        queries=len(groups),
    )


def predict(scale: Scale, nearest: Sequence[Found], threshold: float) -> list[str | None]:
    """What a threshold-only decision returns at ``threshold``, from the permissive pass."""
    return [
        f.answer if f.answer is not None and f.score is not None and scale.passes(f.score, threshold)
        else None
        for f in nearest
    ]  # fmt: skip


def sweep(scale: Scale, groups: Sequence[Group], nearest: Sequence[Found]) -> list[Point]:
    """The curve over :data:`COSINE_GRID`, converted to the system's own scale."""
    out = []
    for cos in COSINE_GRID:
        t = scale.from_cosine(cos)
        out.append(score(groups, predict(scale, nearest, t), t, cos))
    return out


def matched(points: Sequence[Point], target: float) -> Point | None:
    """The point reaching ``target`` precision with the most recall (ties: the higher precision,
    then the lower cosine threshold); None when no threshold reaches it."""
    ok = [p for p in points if p.precision is not None and p.precision >= target]
    if not ok:
        return None
    return max(ok, key=lambda p: (p.recall, p.precision or 0.0, -p.cosine))


def compact(points: Sequence[Point], step: int = 4) -> dict[str, Any]:
    """Every ``step``-th point of a curve as columns (cosine 0.01 apart for the default grid)."""
    kept = list(points)[::step]
    cols = ("cosine", "threshold", "precision", "recall", "hit_rate")
    return {
        c: [None if getattr(p, c) is None else round(getattr(p, c), 4) for p in kept] for c in cols
    }


def best_precision(points: Sequence[Point]) -> float:
    return max((p.precision for p in points if p.precision is not None), default=0.0)


def dump(path: Path, data: Any) -> None:
    """Indented JSON, with lists of numbers on one line each (the curves stay readable)."""
    text = json.dumps(data, indent=2, ensure_ascii=False)
    text = _NUMBERS.sub(
        lambda m: "[" + ", ".join(m.group(1).split()).replace(",,", ",") + "]", text
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


_NUMBERS = re.compile(r"\[((?:\s*(?:-?[\d.e+-]+|null),?)+\s*)\]")
