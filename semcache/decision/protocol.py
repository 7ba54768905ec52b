"""The decision stage's contract: the candidates it is given, the verdict it returns, and the
:class:`Decision` protocol every decision stage satisfies. No I/O."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from semcache.core.types import Entry


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
    judge_calls: int = 0
    """Calls made to a second opinion (a judge) for this decision."""
    judge_usd: float = 0.0
    """What those calls cost, for the accounting."""


@runtime_checkable
class Decision(Protocol):
    """Picks one candidate or none. ``return_fields`` names extra document fields it reads."""

    return_fields: tuple[str, ...]

    def decide(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> Generator[Any, Any, Verdict]: ...
