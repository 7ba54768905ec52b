"""The semantic layer's decision stage: from the top-k candidates, pick one or none.

The core fetches the k nearest entries in scope and hands them to a :class:`Decision`; the decision
returns a :class:`Verdict` that names the accepted candidate (or none) and records why, check by
check. A decision is a flow like the rest of the core, so a check that needs I/O (a second embedding
model, an LLM judge) yields a :class:`semcache._core.Call` and stays written once for sync and async.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from semcache._types import Entry


@dataclass(frozen=True, slots=True)
class Candidate:
    """One entry the semantic search returned, nearest first."""

    digest: str
    similarity: float
    entry: Entry
    text: str
    fields: Mapping[str, Any]
    """Every field the search returned for the entry's document (raw Redis values)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the decision stage chose, and why.

    ``checks`` holds one ``(check, outcome)`` pair per check consulted, in order, for example
    ``("threshold", "0.9412 >= 0.9000")`` or ``("guard", "reject: numbers 3 != 4")``.
    """

    accepted: Candidate | None
    reason: str
    checks: tuple[tuple[str, str], ...] = ()


@runtime_checkable
class Decision(Protocol):
    """Picks one candidate or none. ``return_fields`` names extra document fields it reads."""

    return_fields: tuple[str, ...]

    def decide(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> Generator[Any, Any, Verdict]: ...


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
