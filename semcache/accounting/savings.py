"""What a cache hit saves, counted by the accounting module exactly as a live cache counts it:
the stored usage (else tokens counted with tiktoken), priced with the price table (cached prompt
tokens at the cached rate), else the stored upstream cost."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from semcache.accounting.accounting import hit_counters
from semcache.accounting.prices import PriceTable
from semcache.core.plan import Plan
from semcache.core.types import Entry, LookupResult

#: The ``object`` of the placeholder stored for a logged request without a response.
PLACEHOLDER = "semcache.replay.placeholder"
_LAYER = "hit"


@dataclass(frozen=True, slots=True)
class Saving:
    """What answering one request from the cache saved (usd None: no price known)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    usd: float | None = None
    known: bool = True
    """False when the answering entry carried no usage (nothing to count)."""

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def saving_of(plan: Plan, response: Mapping[str, Any] | None) -> Saving:
    """The saving of a hit answered by ``response``, the stored body of ``plan``'s request."""
    if not response or response.get("object") == PLACEHOLDER:
        return Saving(known=False)
    entry = Entry(response=dict(response), kind=plan.canon.kind, model=plan.canon.model)
    return saving_of_hit(plan, LookupResult(layer="exact", entry=entry))


def saving_of_hit(plan: Plan, result: LookupResult) -> Saving:
    """The saving of a real lookup's hit (``result.entry`` is the answering entry)."""
    entry = result.entry
    if entry is None or entry.response.get("object") == PLACEHOLDER:
        return Saving(known=False)
    counters = hit_counters(_LAYER, plan, result, _prices())
    if f"{_LAYER}:prompt_tokens_saved" not in counters:
        return Saving(known=False)
    usd = counters.get(f"{_LAYER}:usd_saved")
    return Saving(
        prompt_tokens=int(counters[f"{_LAYER}:prompt_tokens_saved"]),
        completion_tokens=int(counters.get(f"{_LAYER}:completion_tokens_saved", 0)),
        usd=None if usd is None else float(usd),
    )


@functools.cache
def _prices() -> PriceTable:
    return PriceTable()
