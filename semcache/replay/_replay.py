"""Replay a request log through a real cache, and evaluate a whole threshold sweep from one pass.

The replay feeds each request, in order, to :meth:`Cache.lookup_plan` and stores the logged response
on each miss, calling no model. The sweep cannot reuse those lookups: which requests get stored
depends on the threshold (a hit at T stores nothing that a later request could match at T' > T). So
the same pass also records a threshold-independent **trace**: for every request, its exact key, its
semantic scope, and the similarity to every earlier request of the same scope at or above the lowest
threshold asked for. :func:`simulate` then replays the trace at any threshold with the cache's own
rules (exact key first, then the closest stored entry of the scope at or above the threshold, store on
a miss) and gives what a separate replay at that threshold gives, without touching Redis again.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from semcache.accounting.savings import PLACEHOLDER, saving_of, saving_of_hit
from semcache.core.config import CacheConfig
from semcache.core.ops import NeedsIO, drive, refuse
from semcache.core.plan import Plan, Planner
from semcache.core.types import Entry, LookupResult
from semcache.decision.decide import decision_floor, default_decision, offline
from semcache.decision.protocol import Candidate
from semcache.embedding.embedders import Embedder
from semcache.replay._figures import Figures, Outcome, Saving, figures
from semcache.replay._logs import BadLine, Log, LogRecord

T = TypeVar("T")
Progress = Callable[[Iterable[Any], str, int], Iterable[Any]]

#: Stored on a miss when the log has no response for the request.
NO_RESPONSE: dict[str, Any] = {"object": PLACEHOLDER, "choices": []}

_EPSILON = 1e-6  # keep candidates a rounding error below the lowest threshold
_BLOCK = 512


def _quiet(items: Iterable[Any], desc: str, total: int) -> Iterable[Any]:
    return items


@dataclass(frozen=True, slots=True)
class Step:
    """The threshold-independent facts of one request."""

    digest: str
    scope: str | None
    """The semantic scope, or None when the semantic layer is skipped for this request."""
    group: str | None
    stores: bool
    """False when the cache would neither look up nor store (a bypassed request)."""
    cand_index: npt.NDArray[np.int64]
    cand_sim: npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Trace:
    """Everything :func:`simulate` needs: one step and one saving per request."""

    steps: tuple[Step, ...]
    savings: tuple[Saving, ...]
    """What a hit on the entry stored by request j saves."""
    floor: float
    texts: tuple[str, ...] = ()
    """The semantic text of each request (what the decision stage compares)."""
    entries: tuple[Entry, ...] = ()
    decision: Any = None
    """The cache's decision stage; None: the plain threshold."""
    top_k: int = 4

    @property
    def labelled(self) -> bool:
        return any(s.group is not None for s in self.steps)


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """A replay's figures at its threshold, its sweep, and the per-request outcomes behind them."""

    figures: Figures
    sweep: tuple[Figures, ...]
    outcomes: tuple[Outcome, ...]
    bad_lines: tuple[BadLine, ...]
    records: tuple[LogRecord, ...]
    namespace: str = ""

    def to_json(self) -> dict[str, Any]:
        out = self.figures.to_json()
        out["namespace"] = self.namespace
        out["bad_lines"] = [
            {"source": b.source, "line": b.line, "error": b.error} for b in self.bad_lines
        ]
        out["sweep"] = [f.to_json() for f in self.sweep]
        return out


# --- simulation (no I/O) ---------------------------------------------------------------------------


def simulate(trace: Trace, threshold: float) -> list[Outcome]:
    """Replay a trace at one threshold with the cache's rules, starting from an empty cache."""
    if decision_floor(trace.decision, threshold) < trace.floor - _EPSILON:
        raise ValueError(f"the trace only holds similarities >= {trace.floor}")
    n = len(trace.steps)
    by_digest: dict[str, int] = {}
    stored = np.zeros(n, dtype=bool)
    groups: Counter[tuple[str | None, str]] = Counter()
    out: list[Outcome] = []
    for i, step in enumerate(trace.steps):
        outcome = _simulate_one(trace, i, step, threshold, by_digest, stored, groups)
        out.append(outcome)
        if outcome.layer is None and step.stores:
            by_digest[step.digest] = i
            stored[i] = True
            if step.group is not None:
                groups[(step.scope or step.digest, step.group)] += 1
    return out


def _simulate_one(
    trace: Trace,
    i: int,
    step: Step,
    threshold: float,
    by_digest: dict[str, int],
    stored: npt.NDArray[np.bool_],
    groups: Counter[tuple[str | None, str]],
) -> Outcome:
    if not step.stores:
        return Outcome(index=i, layer=None)
    j = by_digest.get(step.digest)
    if j is not None:
        return Outcome(index=i, layer="exact", matched=j, similarity=1.0, saving=trace.savings[j])
    live = stored[step.cand_index]
    sims = step.cand_sim[live]
    best = float(sims.max()) if sims.size else None
    k = _decide(trace, i, step.cand_index[live], sims, threshold) if best is not None else None
    if best is not None and k is not None:
        return Outcome(
            index=i,
            layer="semantic",
            matched=k,
            similarity=float(sims[step.cand_index[live] == k][0]),
            best_similarity=best,
            false_hit=_false_hit(step.group, trace.steps[k].group),
            saving=trace.savings[k],
        )
    missed = step.group is not None and groups[(step.scope or step.digest, step.group)] > 0
    return Outcome(index=i, layer=None, best_similarity=best, missed_equivalent=missed)


def _decide(
    trace: Trace,
    i: int,
    index: npt.NDArray[np.int64],
    sims: npt.NDArray[np.float32],
    threshold: float,
) -> int | None:
    """The request whose entry the decision stage accepts among the top-k stored candidates."""
    if float(sims.max()) < decision_floor(trace.decision, threshold):
        return None  # no decision stage accepts a candidate below its band
    order = np.lexsort((index, -sims))[: trace.top_k]
    if trace.decision is None:
        return int(index[order[0]])
    candidates = [
        Candidate(trace.steps[k].digest, float(s), trace.entries[k], trace.texts[k], {})
        for k, s in ((int(index[o]), sims[o]) for o in order)
    ]
    flow = trace.decision.decide(trace.texts[i], candidates, threshold)
    try:
        accepted = drive(flow, refuse, throw=False).accepted
    except NeedsIO as exc:
        raise ValueError(
            f"the sweep cannot simulate a decision stage that calls a model ({exc.op!r})"
        ) from None
    return None if accepted is None else int(index[order[candidates.index(accepted)]])


def _false_hit(group: str | None, matched_group: str | None) -> bool | None:
    if group is None or matched_group is None:
        return None
    return group != matched_group


# --- building a trace ------------------------------------------------------------------------------


def build_trace(
    plans: Sequence[Plan],
    records: Sequence[LogRecord],
    vectors: dict[str, npt.NDArray[np.float32]],
    *,
    floor: float,
    bypassed: Sequence[bool],
    decision: Any = None,
    top_k: int = 4,
) -> Trace:
    """Record, for every request, the earlier requests of its scope at or above ``floor``."""
    cand: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]] = [
        (np.zeros(0, np.int64), np.zeros(0, np.float32)) for _ in plans
    ]
    for members in _scopes(plans, bypassed).values():
        for i, found in _neighbours(members, plans, vectors, floor - _EPSILON):
            cand[i] = found
    steps = tuple(
        Step(
            digest=p.digest,
            scope=p.scope if p.skip_semantic is None else None,
            group=r.group,
            stores=not bypass,
            cand_index=cand[i][0],
            cand_sim=cand[i][1],
        )
        for i, (p, r, bypass) in enumerate(zip(plans, records, bypassed, strict=True))
    )
    savings = tuple(saving_of(p, r.response) for p, r in zip(plans, records, strict=True))
    entries = tuple(
        Entry(
            response=r.response or NO_RESPONSE, kind=p.canon.kind, model=p.canon.model, text=p.text
        )
        for p, r in zip(plans, records, strict=True)
    )
    return Trace(
        steps=steps,
        savings=savings,
        floor=floor,
        texts=tuple(p.text for p in plans),
        entries=entries,
        decision=decision,
        top_k=top_k,
    )


def _scopes(plans: Sequence[Plan], bypassed: Sequence[bool]) -> dict[str, list[int]]:
    scopes: dict[str, list[int]] = {}
    for i, plan in enumerate(plans):
        if plan.skip_semantic is None and not bypassed[i]:
            scopes.setdefault(plan.scope, []).append(i)
    return scopes


def _neighbours(
    members: list[int],
    plans: Sequence[Plan],
    vectors: dict[str, npt.NDArray[np.float32]],
    floor: float,
) -> Iterator[tuple[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]]:
    index = np.asarray(members, dtype=np.int64)
    matrix = np.vstack([vectors[plans[i].text] for i in members]).astype(np.float32)
    for start in range(0, len(members), _BLOCK):
        block = matrix[start : start + _BLOCK] @ matrix[: start + _BLOCK].T
        for r in range(block.shape[0]):
            row = block[r, : start + r]
            keep = np.nonzero(row >= floor)[0]
            yield members[start + r], (index[keep], row[keep].astype(np.float32))


def embed_texts(
    embed: Callable[[list[str]], Any],
    texts: Iterable[str],
    *,
    batch: int = 256,
    progress: Progress = _quiet,
) -> dict[str, npt.NDArray[np.float32]]:
    """Vectors of the distinct texts, embedded in batches."""
    unique = list(dict.fromkeys(texts))
    out: dict[str, npt.NDArray[np.float32]] = {}
    chunks = [unique[s : s + batch] for s in range(0, len(unique), batch)]
    for chunk in progress(chunks, "embedding", len(chunks)):
        rows = np.asarray(embed(chunk), dtype=np.float32)
        out.update(zip(chunk, rows, strict=True))
    return out


# --- the real pass ---------------------------------------------------------------------------------


def replay(
    cache: Any,
    log: Log | Iterable[LogRecord],
    *,
    threshold: float | None = None,
    sweep: Sequence[float] = (),
    progress: Progress = _quiet,
    feedback: bool = False,
) -> ReplayReport:
    """Feed a log in order through ``cache`` (a :class:`semcache.Cache`), storing the logged response
    on each miss and calling no model; evaluate every threshold of ``sweep`` from the same pass.

    With ``feedback=True`` every semantic lookup of a grouped request is labelled through
    ``cache.feedback`` (right when the served, or nearest, entry is of the request's group), as a
    user's thumbs-up/down would: per-entry thresholds learn during the replay. The sweep cannot
    simulate that learning, so the two do not go together.

    The cache should start empty (a fresh namespace): the sweep simulates from an empty cache.

    Example::

        with semcache.Cache(namespace="replay-1") as cache:
            report = replay(cache, read_log("traffic.jsonl"), threshold=0.9, sweep=[0.8, 0.85, 0.9])
            cache.flush()
        report.figures.semantic.precision
    """
    if feedback and sweep:
        raise ValueError("a sweep cannot simulate what feedback teaches; replay with one threshold")
    records, bad = _records(log)
    t = cache.config.threshold if threshold is None else float(threshold)
    plans, records, bad = _plans(cache, records, bad, t)
    bypassed, texts = _semantic_texts(cache.bypasses, plans)
    vectors = embed_texts(cache.embed, texts, progress=progress)
    trace = build_trace(
        plans,
        records,
        vectors,
        floor=decision_floor(cache.decision, min([t, *sweep])),
        bypassed=bypassed,
        decision=offline(cache.decision),
        top_k=cache.config.top_k,
    )
    outcomes = _real_pass(cache, plans, records, trace, progress, feedback)
    return ReplayReport(
        figures=figures(t, outcomes, labelled=trace.labelled),
        sweep=tuple(
            figures(x, simulate(trace, x), labelled=trace.labelled)
            for x in progress(sweep, "sweeping", len(sweep))
        ),
        outcomes=tuple(outcomes),
        bad_lines=tuple(bad),
        records=tuple(records),
        namespace=cache.namespace,
    )


def _semantic_texts(
    bypasses: Callable[[Plan], bool], plans: list[Plan]
) -> tuple[list[bool], list[str]]:
    """Which requests the cache bypasses, and the semantic texts of the others (to embed)."""
    bypassed = [bypasses(p) for p in plans]
    texts = [
        p.text for p, b in zip(plans, bypassed, strict=True) if p.skip_semantic is None and not b
    ]
    return bypassed, texts


def _records(log: Log | Iterable[LogRecord]) -> tuple[list[LogRecord], list[BadLine]]:
    if isinstance(log, Log):
        return list(log.records), list(log.bad_lines)
    return list(log), []


def _plans(
    planner: Any, records: list[LogRecord], bad: list[BadLine], threshold: float
) -> tuple[list[Plan], list[LogRecord], list[BadLine]]:
    plans, kept = [], []
    for record in records:
        try:
            plans.append(planner.plan(record.request, tenant=record.tenant, threshold=threshold))
        except Exception as exc:  # a request the cache refuses is a bad line, not a crash
            bad.append(BadLine(record.source, record.line, f"invalid request: {exc}"))
            continue
        kept.append(record)
    return plans, kept, bad


def _real_pass(
    cache: Any,
    plans: list[Plan],
    records: list[LogRecord],
    trace: Trace,
    progress: Progress,
    feedback: bool = False,
) -> list[Outcome]:
    by_digest: dict[str, int] = {}
    groups: Counter[tuple[str | None, str]] = Counter()
    out: list[Outcome] = []
    for i in progress(range(len(plans)), "replaying", len(plans)):
        plan, record, step = plans[i], records[i], trace.steps[i]
        result: LookupResult = cache.lookup_plan(plan)
        out.append(_outcome(i, plan, result, step, trace, by_digest, groups))
        if feedback:
            _label(cache, result, step, trace, by_digest)
        stored = result.layer is None and step.stores
        if stored and cache.store_plan(plan, record.response or NO_RESPONSE):
            by_digest[plan.digest] = i
            if step.group is not None:
                groups[(step.scope or step.digest, step.group)] += 1
    return out


def _label(
    cache: Any, result: LookupResult, step: Step, trace: Trace, by_digest: dict[str, int]
) -> None:
    """Tell the cache whether the served (or, on a miss, the nearest) entry was the right one."""
    if step.group is None or result.layer in ("exact", "l1"):
        return
    digest = result.matched_key if result.layer == "semantic" else result.nearest_key
    j = by_digest.get(digest or "")
    if j is None:
        return
    cache.feedback(result, correct=trace.steps[j].group == step.group)


def _outcome(
    i: int,
    plan: Plan,
    result: LookupResult,
    step: Step,
    trace: Trace,
    by_digest: dict[str, int],
    groups: Counter[tuple[str | None, str]],
) -> Outcome:
    if result.layer is None:
        missed = step.group is not None and groups[(step.scope or step.digest, step.group)] > 0
        return Outcome(
            index=i,
            layer=None,
            best_similarity=result.best_similarity,
            missed_equivalent=missed,
            lookup_ms=result.lookup_ms,
        )
    j = by_digest.get(result.matched_key or "")
    matched_group = trace.steps[j].group if j is not None else None
    saving = saving_of_hit(plan, result)
    return Outcome(
        index=i,
        layer="exact" if result.layer in ("exact", "l1") else "semantic",
        matched=j,
        similarity=result.similarity,
        best_similarity=result.best_similarity,
        false_hit=_false_hit(step.group, matched_group) if result.layer == "semantic" else None,
        saving=saving,
        lookup_ms=result.lookup_ms,
    )


# --- without Redis -----------------------------------------------------------------------------------


def trace_log(
    records: Sequence[LogRecord],
    embedder: Embedder,
    *,
    floor: float,
    config: CacheConfig | None = None,
    progress: Progress = _quiet,
) -> tuple[Trace, list[BadLine]]:
    """A trace of a log computed with an embedder alone (no Redis), for offline evaluation."""
    config = config or CacheConfig()
    planner = Planner(config, embedder.model_id)
    decision = config.decision or default_decision()
    plans, kept, bad = _plans(planner, list(records), [], config.threshold)
    bypassed, texts = _semantic_texts(lambda p: planner.bypass_reason(p) is not None, plans)
    vectors = embed_texts(embedder.embed, texts, progress=progress)
    trace = build_trace(
        plans,
        kept,
        vectors,
        floor=decision_floor(decision, floor),
        bypassed=bypassed,
        decision=offline(decision),
        top_k=config.top_k,
    )
    return trace, bad


def threshold_grid(spec: str) -> list[float]:
    """Thresholds from ``"A:B:STEP"`` (B included), e.g. ``"0.8:0.9:0.05"`` → [0.8, 0.85, 0.9]."""
    try:
        start, stop, step = (float(x) for x in spec.split(":"))
    except ValueError as exc:
        raise ValueError(f"expected A:B:STEP, got {spec!r}") from exc
    if step <= 0 or stop < start or not (start >= -1 and stop <= 1):
        raise ValueError(f"need -1 <= A <= B <= 1 and STEP > 0, got {spec!r}")
    count = round((stop - start) / step + 1e-9) + 1
    return [round(start + k * step, 6) for k in range(count) if start + k * step <= stop + 1e-9]
