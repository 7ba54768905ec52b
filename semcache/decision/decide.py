"""The semantic layer's decision stage: from the top-k candidates, pick one or none.

The core fetches the k nearest entries in scope and hands them to a :class:`Decision`; the decision
returns a :class:`Verdict` that names the accepted candidate (or none) and records why, check by
check. A decision is a flow like the rest of the core, so a check that needs I/O (a second embedding
model, an LLM judge) yields a :class:`semcache.core.ops.Call` and stays written once for sync and async.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any

from semcache.core.ops import Call
from semcache.decision.guard import Guard
from semcache.decision.opinion import SecondOpinion
from semcache.decision.protocol import Candidate as Candidate
from semcache.decision.protocol import Decision as Decision
from semcache.decision.protocol import Verdict as Verdict
from semcache.decision.thresholds import PerEntryThresholds, decode


class ThresholdDecision:
    """The plain global threshold: the nearest candidate at or above it wins."""

    return_fields: tuple[str, ...] = ()

    def decide(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> Generator[Any, Any, Verdict]:
        checks = []
        for candidate in candidates:
            passed = candidate.similarity >= threshold
            sign = ">=" if passed else "<"
            checks.append(("threshold", f"{candidate.similarity:.4f} {sign} {threshold:.4f}"))
            if passed:
                return Verdict(candidate, "accepted", tuple(checks))
            break
        return Verdict(None, "below-threshold", tuple(checks))
        yield  # a flow that needs no I/O


class GuardedDecision:
    """The global threshold (or an entry's own), the lexical guard, and a second opinion for
    borderline candidates; a rejected candidate hands over to the next one.

    For each candidate, nearest first: its cut-off is the entry's learned threshold when
    ``per_entry`` is set and the entry has feedback, else the request's threshold; a candidate below
    its cut-off (or below the opinion's band, when a judge is set) is rejected; then the guard;
    then, inside the band, the judge. Every step is recorded in ``LookupResult.checks``.

    Args:
        guard: the lexical guard (None: off).
        per_entry: per-entry thresholds learned from :meth:`semcache.Cache.feedback` (None: off).
        opinion: a judge consulted only for borderline candidates (None: off).

    Example::

        config = semcache.CacheConfig(decision=semcache.GuardedDecision(
            per_entry=semcache.PerEntryThresholds(delta=0.05)))
    """

    def __init__(
        self,
        *,
        guard: Guard | None = None,
        per_entry: PerEntryThresholds | None = None,
        opinion: SecondOpinion | None = None,
    ) -> None:
        self.guard = guard
        self.per_entry = per_entry
        self.opinion = opinion
        self.return_fields: tuple[str, ...] = ("fb",) if per_entry else ()

    def __repr__(self) -> str:
        return f"GuardedDecision(guard={self.guard!r}, per_entry={self.per_entry!r}, opinion={self.opinion!r})"

    def decide(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> Generator[Any, Any, Verdict]:
        checks: list[tuple[str, str]] = []
        reason = "below-threshold"
        chosen = None
        for candidate in candidates:
            outcome = yield from self._judge(query, candidate, threshold, checks)
            if outcome is None:
                chosen, reason = candidate, "accepted"
                break
            reason = outcome
        calls = sum(1 for name, _ in checks if self.opinion and name == self.opinion.name)
        cost = calls * self.opinion.cost_usd if self.opinion else 0.0
        return Verdict(chosen, reason, tuple(checks), judge_calls=calls, judge_usd=cost)

    def _cutoff(
        self, candidate: Candidate, threshold: float, checks: list[tuple[str, str]]
    ) -> float:
        if self.per_entry is None or not candidate.fields.get("fb"):
            return threshold
        cutoff = self.per_entry.threshold(candidate.fields["fb"], threshold)
        seen = len(decode(candidate.fields["fb"]))
        checks.append(
            ("per-entry", f"{candidate.digest[:12]} cut-off {cutoff:.4f} from {seen} feedback")
        )
        return cutoff

    def _judge(
        self, query: str, candidate: Candidate, threshold: float, checks: list[tuple[str, str]]
    ) -> Generator[Any, Any, str | None]:
        """None when the candidate is accepted, else why it was rejected."""
        cutoff = self._cutoff(candidate, threshold, checks)
        low, high = self.opinion.band(cutoff) if self.opinion else (cutoff, cutoff)
        s = candidate.similarity
        checks.append(("threshold", f"{s:.4f} {'>=' if s >= low else '<'} {low:.4f}"))
        if s < low:
            return "below-threshold"
        if self.guard is not None:
            why = self.guard.check(query, candidate.text)
            checks.append(("guard", f"reject: {why}" if why else "pass"))
            if why:
                return "guard"
        if self.opinion is not None and s < high:
            return (yield from self._ask(query, candidate, checks))
        return None

    def _ask(
        self, query: str, candidate: Candidate, checks: list[tuple[str, str]]
    ) -> Generator[Any, Any, str | None]:
        opinion = self.opinion
        assert opinion is not None
        afn = opinion.ajudge or getattr(opinion.judge, "acall", None)
        try:
            verdict = yield Call(opinion.judge, (query, candidate.text), afn)
        except Exception as exc:  # a failing judge is a "no": a miss costs less than a wrong answer
            checks.append((opinion.name, f"reject: judge failed ({type(exc).__name__})"))
            return "opinion"
        accepted = opinion.accepts(verdict)
        shown = f"{verdict:.4f}" if isinstance(verdict, float) else str(verdict)
        checks.append((opinion.name, f"{'accept' if accepted else 'reject'}: {shown}"))
        return None if accepted else "opinion"


def default_decision() -> Decision:
    """What ``CacheConfig(decision=None)`` means: every check that calls no model (see README,
    "Fewer wrong answers", for the measurements behind it)."""
    return GuardedDecision(guard=Guard())
