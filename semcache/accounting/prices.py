"""Per-token prices: overrides first, then genai-prices' maintained table; never a guess.

A model neither overridden nor in the table is *unpriced*: its tokens are still counted, its dollars
are not. A price from the table computes costs with genai-prices' own ``calc_price`` (tiered rates
past some prompt size, cache reads); its ``input`` / ``output`` fields show the base tier. No I/O
here: genai-prices carries its table offline.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from semcache._errors import ConfigurationError

log = logging.getLogger("semcache")

_MTOK = 1_000_000

#: Token counts whose cost a table price remembers.
_MEMO = 4096


@dataclass(frozen=True, slots=True)
class Price:
    """A model's prices in USD per million tokens.

    Args:
        input: uncached prompt tokens.
        output: completion tokens.
        cached_input: prompt tokens the provider served from its prompt cache (default: ``input``).

    Example::

        semcache.Cache(prices={"my-finetune": semcache.Price(input=0.30, output=1.20)})
    """

    input: float
    output: float = 0.0
    cached_input: float | None = None

    def __post_init__(self) -> None:
        for value in (self.input, self.output, self.cached_input):
            if value is not None and (not isinstance(value, int | float) or value < 0):
                raise ConfigurationError(f"prices must be non-negative numbers, got {value!r}")

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        """USD for a call: uncached prompt, cached prompt and completion tokens at their rates."""
        cached = min(cached, prompt)
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return (
            (prompt - cached) * self.input + cached * cached_rate + completion * self.output
        ) / _MTOK


@dataclass(frozen=True, slots=True)
class _TablePrice(Price):
    """A price from genai-prices: costs go through its ``calc_price`` (tiers, cache reads)."""

    model_price: Any = field(default=None, repr=False, compare=False)
    _costs: dict[tuple[int, int, int], float] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Costs already computed: ``calc_price`` takes about 0.2 ms, and a cache's hits repeat the
    same token counts (the table is fixed for the life of the process)."""

    def cost(self, prompt: int, completion: int, cached: int = 0) -> float:
        key = (prompt, completion, cached)
        found = self._costs.get(key)
        if found is None:
            if len(self._costs) >= _MEMO:
                self._costs.clear()
            found = self._costs[key] = self._calc(prompt, completion, cached)
        return found

    def _calc(self, prompt: int, completion: int, cached: int) -> float:
        from genai_prices import Usage

        # genai-prices counts cache reads inside input_tokens, as semcache counts them in prompt.
        usage = Usage(
            input_tokens=prompt, output_tokens=completion, cache_read_tokens=min(cached, prompt)
        )
        try:
            return float(self.model_price.calc_price(usage)["total_price"])
        except Exception as exc:  # a table problem must not break accounting: base tier instead
            log.warning("semcache: genai-prices could not price a call: %r", exc)
            return Price.cost(self, prompt, completion, cached)


class PriceTable:
    """Prices by model name: ``overrides`` first, then genai-prices for ``provider``.

    Args:
        overrides: ``{model: Price}``; wins over the table (exact model name).
        provider: genai-prices provider id to look models up in (None: any provider that knows the
            model name).
    """

    def __init__(
        self, overrides: Mapping[str, Price] | None = None, *, provider: str | None = "openai"
    ) -> None:
        self.overrides = dict(overrides or {})
        for model, price in self.overrides.items():
            if not isinstance(price, Price):
                raise ConfigurationError(f"the price of {model!r} must be a semcache.Price")
        self.provider = provider
        self._known: dict[str, Price | None] = {}
        self._lock = threading.Lock()

    def load(self) -> PriceTable:
        """Read genai-prices' table now (an import of about 0.2 s) rather than at the first hit a
        cache prices; nothing to do when it is not installed or already read."""
        if importlib.util.find_spec("genai_prices") is not None:
            import genai_prices  # noqa: F401  # the import is the whole of the work

        return self

    def price(self, model: str) -> Price | None:
        """The model's prices, or None when it is unpriced."""
        if model in self.overrides:
            return self.overrides[model]
        with self._lock:
            if model not in self._known:
                self._known[model] = _table_price(model, self.provider)
            return self._known[model]

    def cost(self, model: str, prompt: int, completion: int, cached: int = 0) -> float | None:
        """USD for a call of ``model``, or None when the model is unpriced."""
        price = self.price(model)
        return None if price is None else price.cost(prompt, completion, cached)


def as_price_table(prices: PriceTable | Mapping[str, Price] | None) -> PriceTable:
    """Accept a table, a mapping of overrides, or None (the maintained table alone)."""
    return prices if isinstance(prices, PriceTable) else PriceTable(prices)


def _table_price(model: str, provider: str | None) -> Price | None:
    if importlib.util.find_spec("genai_prices") is None:
        return None
    from genai_prices import Usage, calc_price

    try:
        found = calc_price(Usage(input_tokens=0), model, provider_id=provider).model_price
    except LookupError:
        return None
    except Exception as exc:  # a table problem must not break a lookup
        log.warning("semcache: no price for %r: %r", model, exc)
        return None
    return _from_model_price(found)


def _from_model_price(found: Any) -> Price | None:
    rates = {name: _base(getattr(found, f"{name}_mtok", None)) for name in ("input", "output")}
    if rates["input"] is None:
        return None
    return _TablePrice(
        input=rates["input"],
        output=rates["output"] or 0.0,
        cached_input=_base(getattr(found, "cache_read_mtok", None)),
        model_price=found,
    )


def _base(value: Any) -> float | None:
    """A per-MTok price as float; a tiered price's base tier."""
    if value is None:
        return None
    return float(getattr(value, "base", value))
