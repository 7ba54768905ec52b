"""Prices from the maintained table go through genai-prices' ``calc_price``: tiered rates past a
prompt size and cache reads, not a formula over the base tier."""

from __future__ import annotations

import pytest
from genai_prices import Usage, calc_price

from semcache.accounting.prices import Price, PriceTable

TIERED = "gpt-5.4"  # $2.50/MTok input up to 272k prompt tokens, $5 past it (genai-prices 0.2)


def reference(prompt: int, completion: int, cached: int = 0) -> float:
    usage = Usage(input_tokens=prompt, output_tokens=completion, cache_read_tokens=cached)
    return float(calc_price(usage, TIERED, provider_id="openai").total_price)


def test_the_tiered_model_is_tiered_in_the_installed_table() -> None:
    price = PriceTable().price(TIERED)
    assert price is not None
    base = Price(input=price.input, output=price.output, cached_input=price.cached_input)
    assert reference(400_000, 1000) > base.cost(400_000, 1000) * 1.5  # the tier is worth testing


@pytest.mark.parametrize(
    ("prompt", "completion", "cached"),
    [(400_000, 1000, 0), (400_000, 1000, 100_000), (10_000, 500, 0), (10_000, 500, 8_000)],
)
def test_costs_match_calc_price_above_and_below_the_tier(
    prompt: int, completion: int, cached: int
) -> None:
    cost = PriceTable().cost(TIERED, prompt, completion, cached)
    assert cost == pytest.approx(reference(prompt, completion, cached))


def test_overrides_keep_their_own_formula() -> None:
    table = PriceTable({TIERED: Price(input=1.0, output=2.0)})
    assert table.cost(TIERED, 400_000, 1000) == pytest.approx((400_000 * 1.0 + 1000 * 2.0) / 1e6)


def test_a_repeated_cost_is_remembered_and_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    price = PriceTable().price(TIERED)
    assert price is not None
    first = [price.cost(400_000, 1000), price.cost(10_000, 500, 8_000)]
    expected = reference(400_001, 1000)
    calls: list[object] = []
    inner = price.model_price.calc_price  # type: ignore[attr-defined]
    monkeypatch.setattr(
        type(price.model_price),  # type: ignore[attr-defined]
        "calc_price",
        lambda self, usage: calls.append(usage) or inner(usage),
    )
    assert [price.cost(400_000, 1000), price.cost(10_000, 500, 8_000)] == first
    assert calls == []  # computed once per token counts
    assert price.cost(400_001, 1000) == pytest.approx(expected)
    assert len(calls) == 1
