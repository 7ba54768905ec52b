"""A second opinion for borderline candidates: a second embedding model or any callable judge.

The judge is consulted only when a candidate's similarity falls in a band around the threshold, so
clear hits and clear misses cost nothing extra. It runs through ``yield Call(...)``, so one
decision works in the sync and the async cache alike.

Example::

    def judge(query: str, candidate: str) -> bool:   # e.g. a cheap LLM call
        return ask_llm(f"Same question? {query!r} / {candidate!r} (yes/no)") == "yes"

    decision = semcache.GuardedDecision(opinion=semcache.SecondOpinion(judge, cost_usd=0.00002))
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from semcache._errors import ConfigurationError
from semcache.embedding.embedders import Embedder

Verdict = bool | float
Judge = Callable[[str, str], Verdict]
AsyncJudge = Callable[[str, str], Awaitable[Verdict]]


@dataclass(frozen=True, slots=True)
class SecondOpinion:
    """When and whom to ask about a borderline candidate.

    Args:
        judge: ``judge(query, candidate_text)`` returning True/False, or a score that accepts at or
            above ``accept``.
        ajudge: its async form for :class:`semcache.AsyncCache` (default: ``judge`` on a thread).
        below, above: the borderline band is ``[threshold - below, threshold + above)``; a candidate
            above it is accepted without asking, one below it is rejected.
        accept: the score at which a numeric verdict accepts.
        cost_usd: what one call costs, for the accounting.
        name: how the check is named in ``LookupResult.checks``.
    """

    judge: Judge
    ajudge: AsyncJudge | None = None
    below: float = 0.1
    above: float = 0.05
    accept: float = 0.5
    cost_usd: float = 0.0
    name: str = "opinion"

    def __post_init__(self) -> None:
        if not callable(self.judge):
            raise ConfigurationError("SecondOpinion needs a callable judge(query, candidate)")
        if self.below < 0 or self.above < 0:
            raise ConfigurationError("the borderline band's widths must be >= 0")

    def band(self, threshold: float) -> tuple[float, float]:
        """The similarities ``[low, high)`` where the judge is asked."""
        return threshold - self.below, threshold + self.above

    def accepts(self, verdict: Any) -> bool:
        """Read a judge's answer: a bool as is, a number against ``accept``."""
        if isinstance(verdict, bool | np.bool_):
            return bool(verdict)
        return float(verdict) >= self.accept


class EmbeddingJudge:
    """A second embedding model as the judge: the cosine similarity of both texts under it.

    Use with ``SecondOpinion(EmbeddingJudge(embedder), accept=0.9)``; the verdict is the similarity.
    """

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def __call__(self, query: str, candidate: str) -> float:
        rows = np.asarray(self.embedder.embed([query, candidate]), dtype=np.float32)
        return float(rows[0] @ rows[1])

    async def acall(self, query: str, candidate: str) -> float:
        rows = np.asarray(await self.embedder.aembed([query, candidate]), dtype=np.float32)
        return float(rows[0] @ rows[1])
