"""The decision stage's contract: the candidates it is given, the verdict it returns, and the
:class:`Decision` protocol every decision stage satisfies. No I/O."""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from semcache.core.types import Entry


class Candidate:
    """One entry the semantic search returned, nearest first.

    Its stored entry is decoded when first read (``raw``: the entry's JSON as stored): a search
    decodes only the candidate it serves, not every one the decision stage looks at.
    """

    __slots__ = ("_entry", "_raw", "digest", "fields", "key", "similarity", "text")

    def __init__(
        self,
        digest: str,
        similarity: float,
        entry: Entry | None,
        text: str,
        fields: Mapping[str, Any],
        *,
        raw: bytes | str | None = None,
        key: str | None = None,
    ) -> None:
        if entry is None and raw is None:
            raise ValueError("a candidate needs its entry or the entry's raw JSON")
        self.digest = digest
        self.similarity = similarity
        self.text = text
        self.fields = fields  # every field the search returned for the document (raw values)
        self.key = key  # the document's Redis key (None: not from a search, nothing to read)
        self._entry = entry
        self._raw = raw

    def __repr__(self) -> str:
        return (
            f"Candidate(digest={self.digest!r}, similarity={self.similarity!r}, text={self.text!r})"
        )

    def decoded(self) -> Entry | None:
        """The stored entry, or None when it is corrupt (decoded once, on first use)."""
        if self._entry is None and self._raw is not None:
            self._entry, self._raw = Entry.from_json(self._raw), None
        return self._entry

    @property
    def entry(self) -> Entry:
        """The stored entry; ValueError when it is corrupt."""
        entry = self.decoded()
        if entry is None:
            raise ValueError(f"the stored entry of candidate {self.digest} is corrupt")
        return entry


Fields = tuple[tuple[str, bytes], ...]
"""Document fields a decision wants written: ``(name, value)`` pairs."""


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
    learned: tuple[tuple[str, Fields], ...] = ()
    """Fields the decision worked out for documents it read, ``(document key, fields)``: the
    verifier's token state of a candidate whose document had none. The semantic layer adds them to
    those documents that still exist (not in a read-only cache)."""


@runtime_checkable
class Decision(Protocol):
    """Picks one candidate or none. ``return_fields`` names extra document fields it reads; a
    decision may also have ``document_fields(text)``: fields it wants stored in an entry's
    document (the verifier's token state), read back by key when it needs them, and its verdict
    may carry such fields for documents it read that lack them (:attr:`Verdict.learned`)."""

    return_fields: tuple[str, ...]

    def decide(
        self, query: str, candidates: Sequence[Candidate], threshold: float
    ) -> Generator[Any, Any, Verdict]: ...
