"""Labelled question pairs for the verifier, split by connected question components. No model.

Quora repeats questions across pairs, so a split by row puts one question on both sides and a model
is then judged on questions it has seen. Here every question (normalised: lower case, words only)
is a node, every labelled pair an edge, and whole connected components go to one side: ``fit``
(the model learns from it), ``dev`` (the training side's own held-out part, where the band and the
cut-off are chosen) and ``test`` (never seen by training or by any choice; the benchmark measures
on it). The same seed gives the same split in ``scripts/train_verifier.py`` and
``benchmarks/bench_accuracy.py``.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ``../shared/data`` beside the project (a worktree one level deeper finds the same folder).
DEFAULT_DATA = next(
    (
        d / "shared" / "data"
        for d in (ROOT.parent, ROOT.parent.parent)
        if (d / "shared" / "data").is_dir()
    ),
    ROOT.parent / "shared" / "data",
)
SEED = 15
FRACTIONS = {"fit": 0.7, "dev": 0.1, "test": 0.2}
_NON_WORD = re.compile(r"[^\w]+", re.UNICODE)

Pair = tuple[str, str, bool]


def normalise(text: str) -> str:
    return _NON_WORD.sub(" ", text.lower()).strip()


def read_qqp(path: Path) -> list[Pair]:
    """``question1 <TAB> question2 <TAB> label`` rows; pairs of one question with itself dropped."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            ok = len(parts) == 3 and parts[2] in ("0", "1") and parts[0].strip() != ""
            if ok and normalise(parts[0]) != normalise(parts[1]):
                rows.append((parts[0].strip(), parts[1].strip(), parts[2] == "1"))
    return rows


def read_paws(path: Path) -> list[Pair]:
    """PAWS-Wiki Labeled (Final) dev: ``id, sentence1, sentence2, label`` (TSV, no header)."""
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 4 and parts[3] in ("0", "1"):
                rows.append((parts[1], parts[2], parts[3] == "1"))
    return rows


def read_mock(path: Path) -> list[Pair]:
    """GPTCache's mock paraphrases: ``{"origin", "similar"}`` pairs, all equivalent."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    return [(r["origin"], r["similar"], True) for r in rows if r["origin"] != r["similar"]]


def read_own() -> list[Pair]:
    """The project's labelled pairs (``semcache/data/pairs.jsonl``)."""
    from semcache import datasets

    return [(p.query, p.candidate, p.equivalent) for p in datasets.load_pairs()]


def components(pairs: Iterable[Pair]) -> dict[str, str]:
    """Each normalised question's component root (union-find with path halving)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b, _ in pairs:
        ra, rb = find(normalise(a)), find(normalise(b))
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: find(x) for x in parent}


@dataclass(frozen=True)
class Split:
    fit: list[Pair]
    dev: list[Pair]
    test: list[Pair]
    components: dict[str, int]
    """Components on each side."""


def split(pairs: Sequence[Pair], seed: int = SEED) -> Split:
    """Whole components to ``fit`` / ``dev`` / ``test`` in :data:`FRACTIONS`, in a seeded order."""
    root = components(pairs)
    roots = sorted(set(root.values()))
    random.Random(seed).shuffle(roots)
    cut1 = round(len(roots) * FRACTIONS["fit"])
    cut2 = cut1 + round(len(roots) * FRACTIONS["dev"])
    side = {r: ("fit" if i < cut1 else "dev" if i < cut2 else "test") for i, r in enumerate(roots)}
    out: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        out[side[root[normalise(pair[0])]]].append(pair)
    counts = {name: sum(1 for s in side.values() if s == name) for name in FRACTIONS}
    return Split(out["fit"], out["dev"], out["test"], counts)


def balanced(pairs: Sequence[Pair], n: int, seed: int = SEED) -> list[Pair]:
    """n pairs, half equivalent, a seeded sample (fewer if a side runs short)."""
    rng = random.Random(seed)
    pos = [p for p in pairs if p[2]]
    neg = [p for p in pairs if not p[2]]
    take = min(n // 2, len(pos), len(neg))
    chosen = rng.sample(pos, take) + rng.sample(neg, take)
    rng.shuffle(chosen)
    return chosen


def duplicates(pairs: Iterable[Pair]) -> set[tuple[str, str]]:
    """Normalised question pairs labelled duplicates (both orders): the lenient count's "right"."""
    out = set()
    for a, b, same in pairs:
        if same:
            na, nb = normalise(a), normalise(b)
            out |= {(na, nb), (nb, na)}
    return out


def duplicate_classes(pairs: Iterable[Pair]) -> dict[str, str]:
    """Each normalised question's class under Quora's duplicate labels taken as an equivalence
    (connected components of the pairs labelled duplicates): the ``closure`` count's "right"."""
    return components(p for p in pairs if p[2])
