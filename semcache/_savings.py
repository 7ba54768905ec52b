"""What a cache hit saves: the tokens the answering entry's usage reports, and their price.

Tokens and prices come from the accounting modules (``_tokens``, ``_prices``) when they are present,
so a replay counts exactly as a live cache does; without them, tokens are read from the reported
``usage`` and dollars are left unpriced.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from semcache._figures import Saving


def saving_of(response: Mapping[str, Any] | None, model: str) -> Saving:
    """The saving of one hit answered by ``response`` (the stored body) of a ``model`` request."""
    if not response:
        return Saving(known=False)
    usage = _usage(response)
    if usage is None:
        return Saving(known=False)
    prompt, completion, cached = usage
    return Saving(prompt, completion, _cost(model, prompt, completion, cached))


def _usage(response: Mapping[str, Any]) -> tuple[int, int, int] | None:
    try:
        from semcache._tokens import reported_usage
    except ImportError:  # the accounting modules are optional here
        return _reported(response)
    found = reported_usage(response)
    return None if found is None else (found.prompt, found.completion, found.cached)


def _reported(response: Mapping[str, Any]) -> tuple[int, int, int] | None:
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return None
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens"))
    if not isinstance(prompt, int) or not isinstance(completion, int):
        return None
    return prompt, completion, 0


def _cost(model: str, prompt: int, completion: int, cached: int) -> float | None:
    table = _price_table()
    if table is None or not model:
        return None
    cost = table.cost(model, prompt, completion, cached)
    return None if cost is None else float(cost)


@functools.cache
def _price_table() -> Any:
    try:
        from semcache._prices import PriceTable
    except ImportError:
        return None
    return PriceTable()
