"""Choose a semantic threshold from labelled data, and see what a cache would do on your traffic.

From labelled pairs (``{"query", "candidate", "equivalent"}`` JSONL) or from a log whose requests
carry a ``group``: similarity distributions of equivalent and non-equivalent pairs; precision,
recall, F1 and false-hit rate per threshold; the threshold that reaches a target precision with the
most recall; and matplotlib plots of it all (``pip install 'semcache[plot]'``).

Example::

    from semcache import datasets, tuning
    scores = tuning.score_pairs(datasets.load_pairs(), semcache.OnnxEmbedder())
    points = tuning.curve(scores)
    best = tuning.recommend(points, target_precision=0.95)
    best.point.threshold, best.point.recall
    tuning.plot_curves(points, mark=best.point)

Replaying a log through a real cache lives here too: :func:`read_log`, :func:`replay`, and its
report as text (:func:`render_text`) or as one HTML page with plots (:func:`render_html`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from semcache.core.config import CacheConfig
from semcache.core.types import Entry
from semcache.decision.decide import decision_floor, offline
from semcache.decision.decide import default_decision as default_decision
from semcache.decision.protocol import Candidate
from semcache.replay._figures import Figures, figures
from semcache.replay._html import render_html as render_html
from semcache.replay._logs import BadLine as BadLine
from semcache.replay._logs import Log as Log
from semcache.replay._logs import LogRecord as LogRecord
from semcache.replay._logs import read_log as read_log
from semcache.replay._plot import pyplot as _pyplot
from semcache.replay._replay import Progress, _quiet, simulate, trace_log
from semcache.replay._replay import ReplayReport as ReplayReport
from semcache.replay._replay import replay as replay
from semcache.replay._replay import threshold_grid as threshold_grid
from semcache.replay._text import render_text as render_text

DEFAULT_GRID = "0.50:1.00:0.01"
_ENTRY = Entry(response={}, kind="chat", model="tuning")


def _run(decision: Any, query: str, candidate: Candidate, threshold: float) -> bool:
    from semcache.decision.calibrate import run

    return run(decision, query, candidate, threshold).accepted is not None


__all__ = [
    "BadLine",
    "CurvePoint",
    "Log",
    "LogRecord",
    "Pair",
    "PairFile",
    "Recommendation",
    "ReplayReport",
    "Scores",
    "at",
    "curve",
    "evaluate_log",
    "log_curve",
    "plot_curves",
    "plot_distributions",
    "read_log",
    "read_pairs",
    "recommend",
    "replay",
    "score_pairs",
    "threshold_grid",
]


@dataclass(frozen=True, slots=True)
class Pair:
    """A labelled pair: would the cached answer to ``candidate`` be right for ``query``?"""

    query: str
    candidate: str
    equivalent: bool
    domain: str = ""
    kind: str = ""
    lang: str = ""


@dataclass(slots=True)
class PairFile:
    """The usable pairs of a file and the lines that were skipped."""

    pairs: list[Pair] = field(default_factory=list)
    bad_lines: list[BadLine] = field(default_factory=list)


def read_pairs(path: str | Path) -> PairFile:
    """Read labelled pairs from JSONL; bad lines are returned with their number, never dropped."""
    out = PairFile()
    with Path(path).open(encoding="utf-8", errors="replace") as handle:
        for number, raw in enumerate(handle, start=1):
            if raw.strip():
                try:
                    out.pairs.append(_pair(json.loads(raw)))
                except (ValueError, TypeError) as exc:
                    out.bad_lines.append(BadLine(str(path), number, str(exc)))
    return out


def _pair(obj: Any) -> Pair:
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    query, candidate, equivalent = obj.get("query"), obj.get("candidate"), obj.get("equivalent")
    if not isinstance(query, str) or not isinstance(candidate, str) or not query or not candidate:
        raise ValueError("needs non-empty string 'query' and 'candidate'")
    if not isinstance(equivalent, bool):
        raise ValueError("'equivalent' must be true or false")
    extra = {k: str(obj.get(k) or "") for k in ("domain", "kind", "lang")}
    return Pair(query, candidate, equivalent, **extra)


# --- scoring ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scores:
    """The cosine similarity and the label of every pair."""

    similarities: npt.NDArray[np.float64]
    labels: npt.NDArray[np.bool_]
    pairs: tuple[Pair, ...] = ()
    allowed: npt.NDArray[np.bool_] | None = None
    """Pairs a guard lets through (None: all); a pair the guard rejects never hits."""
    decision: Any = None
    """A decision stage that decides each pair at each threshold (None: the threshold alone)."""

    def guarded(self, guard: Any) -> Scores:
        """These scores with a lexical guard (e.g. ``semcache.Guard()``) applied to every pair, as
        the cache's default decision stage does."""
        allowed = [guard.check(p.query, p.candidate) is None for p in self.pairs]
        return replace(self, allowed=np.asarray(allowed, dtype=bool))

    def decided(self, decision: Any) -> Scores:
        """These scores decided pair by pair by a decision stage (e.g. :func:`default_decision`:
        the guard and the verifier, as the cache's default decides), at every threshold."""
        return replace(self, decision=offline(decision))

    def hits(self, threshold: float) -> npt.NDArray[np.bool_]:
        """Which pairs hit at ``threshold``."""
        if self.decision is None:
            allowed = np.ones_like(self.labels) if self.allowed is None else self.allowed
            return (self.similarities >= threshold) & allowed
        floor = decision_floor(self.decision, threshold)
        verifier = getattr(self.decision, "verifier", None)
        if verifier is not None and hasattr(verifier, "prefill"):
            verifier.prefill([(p.query, p.candidate) for p, s in zip(self.pairs, self.similarities, strict=True) if s >= floor])  # fmt: skip
        return np.array([
            s >= floor and _run(self.decision, p.query, Candidate(str(i), float(s), _ENTRY, p.candidate, {}), threshold)
            for i, (p, s) in enumerate(zip(self.pairs, self.similarities, strict=True))
        ], dtype=bool)  # fmt: skip

    @property
    def positives(self) -> npt.NDArray[np.float64]:
        return self.similarities[self.labels]

    @property
    def negatives(self) -> npt.NDArray[np.float64]:
        return self.similarities[~self.labels]


def score_pairs(pairs: Sequence[Pair], embedder: Any, *, batch: int = 256) -> Scores:
    """Embed both sides of every pair (each distinct text once, in batches) and score them.

    ``embedder`` is an :class:`semcache.Embedder` or a :class:`semcache.Cache` (whose ``embed``
    goes through the embedding cache).
    """
    texts = list(dict.fromkeys(t for p in pairs for t in (p.query, p.candidate)))
    rows: dict[str, npt.NDArray[np.float32]] = {}
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        rows.update(zip(chunk, np.asarray(embedder.embed(chunk), dtype=np.float32), strict=True))
    sims = [float(np.dot(rows[p.query], rows[p.candidate])) for p in pairs]
    labels = [p.equivalent for p in pairs]
    return Scores(np.asarray(sims, dtype=np.float64), np.asarray(labels, dtype=bool), tuple(pairs))


# --- curves ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CurvePoint:
    """What one threshold does.

    ``precision`` is None where nothing hits. ``false_hit_rate`` is the share of non-equivalent
    pairs that would hit (for a log: false hits per request). ``hit_rate`` is the share of pairs
    that would hit (for a log: the replayed hit rate, exact layer included).
    """

    threshold: float
    precision: float | None
    recall: float
    f1: float
    false_hit_rate: float
    hit_rate: float
    true_hits: int = 0
    false_hits: int = 0
    missed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def curve(scores: Scores, thresholds: Sequence[float] | None = None) -> list[CurvePoint]:
    """Precision, recall, F1, false-hit rate and hit rate of labelled pairs at every threshold."""
    grid = threshold_grid(DEFAULT_GRID) if thresholds is None else list(thresholds)
    sims, labels = scores.similarities, scores.labels
    positives, negatives = int(labels.sum()), int((~labels).sum())
    out = []
    for t in grid:
        hit = scores.hits(t)
        tp, fp = int((hit & labels).sum()), int((hit & ~labels).sum())
        out.append(
            _point(
                t,
                tp,
                fp,
                positives - tp,
                fp / negatives if negatives else 0.0,
                (tp + fp) / len(sims) if len(sims) else 0.0,
            )
        )
    return out


def _point(t: float, tp: int, fp: int, fn: int, false_rate: float, hit_rate: float) -> CurvePoint:
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    return CurvePoint(t, precision, recall, f1, false_rate, hit_rate, tp, fp, fn)


def log_curve(sweep: Sequence[Figures]) -> list[CurvePoint]:
    """Curve points of a replay sweep over a grouped log: precision and recall of semantic hits."""
    out = []
    for f in sweep:
        fp = f.semantic.false_hits or 0
        tp = f.semantic.hits - fp
        fn = round(tp / f.recall) - tp if f.recall else 0
        out.append(
            _point(f.threshold, tp, fp, fn, fp / f.requests if f.requests else 0.0, f.hit_rate)
        )
    return out


def evaluate_log(
    records: Sequence[LogRecord],
    embedder: Any,
    thresholds: Sequence[float],
    *,
    config: CacheConfig | None = None,
    progress: Progress = _quiet,
) -> list[Figures]:
    """What a cache would do on a log at each threshold, computed offline (no Redis) with the
    same rules as :func:`replay`. ``progress(items, description, total)`` wraps the embedding
    batches and the thresholds (a tqdm bar, for example)."""
    trace, _ = trace_log(records, embedder, floor=min(thresholds), config=config, progress=progress)
    return [
        figures(t, simulate(trace, t), labelled=trace.labelled)
        for t in progress(thresholds, "sweeping", len(thresholds))
    ]


# --- choosing --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The threshold that reaches ``target_precision`` with the most recall, if one does."""

    target_precision: float
    point: CurvePoint | None

    @property
    def reached(self) -> bool:
        return self.point is not None


def recommend(points: Sequence[CurvePoint], target_precision: float = 0.95) -> Recommendation:
    """Among thresholds whose precision reaches the target, the one with the most recall; ties go
    to the higher precision, then to the lower threshold."""
    ok = [p for p in points if p.precision is not None and p.precision >= target_precision]
    if not ok:
        return Recommendation(target_precision, None)
    best = max(ok, key=lambda p: (p.recall, p.precision or 0.0, -p.threshold))
    return Recommendation(target_precision, best)


def at(points: Sequence[CurvePoint], threshold: float) -> CurvePoint:
    """The point of a curve closest to ``threshold``."""
    return min(points, key=lambda p: abs(p.threshold - threshold))


# --- plots -----------------------------------------------------------------------------------------


def _axes(ax: Any) -> Any:
    if ax is not None:
        return ax
    _, new = _pyplot().subplots(figsize=(7, 4))
    return new


def plot_distributions(scores: Scores, *, threshold: float | None = None, ax: Any = None) -> Any:
    """Histograms of the similarity of equivalent and non-equivalent pairs; returns the Axes."""
    ax = _axes(ax)
    bins = np.linspace(min(0.0, float(scores.similarities.min(initial=0))), 1.0, 51)
    ax.hist(scores.negatives, bins=bins, alpha=0.6, label="not equivalent", color="#d62728")
    ax.hist(scores.positives, bins=bins, alpha=0.6, label="equivalent", color="#2ca02c")
    _mark(ax, threshold)
    ax.set(xlabel="cosine similarity", ylabel="pairs", title="Similarity of labelled pairs")
    ax.legend()
    return ax


def plot_curves(
    points: Sequence[CurvePoint], *, mark: CurvePoint | None = None, ax: Any = None
) -> Any:
    """Precision, recall, F1 and false-hit rate against the threshold; returns the Axes."""
    ax = _axes(ax)
    xs = [p.threshold for p in points]
    series: dict[str, Callable[[CurvePoint], float | None]] = {
        "precision": lambda p: p.precision,
        "recall": lambda p: p.recall,
        "F1": lambda p: p.f1,
        "false-hit rate": lambda p: p.false_hit_rate,
    }
    for name, get in series.items():
        ys = [np.nan if get(p) is None else get(p) for p in points]
        ax.plot(xs, ys, label=name)
    _mark(ax, mark.threshold if mark else None)
    ax.set(xlabel="threshold (cosine similarity)", ylim=(-0.02, 1.02), title="Threshold curves")
    ax.legend(loc="lower left")
    return ax


def _mark(ax: Any, threshold: float | None) -> None:
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1)
        ax.annotate(
            f"{threshold:.2f}", (threshold, 1.0), xytext=(3, -12), textcoords="offset points"
        )
