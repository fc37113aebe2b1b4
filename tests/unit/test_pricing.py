"""Per-model prices: exact nano-dollar costs, no cost without a price, errors naming entries."""

from __future__ import annotations

import pytest

from control_plane.domain import catalog, pricing
from control_plane.domain.errors import InvalidArgument
from control_plane.domain.pricing import Price, cost_nanos


def test_cached_input_is_charged_at_its_own_rate() -> None:
    prices = {"openai/gpt-4o": Price(2.5, 10.0, 1.25)}
    # 600 uncached at $2.50/M + 400 cached at $1.25/M + 100 out at $10/M = $0.0030
    assert cost_nanos(prices, "openai", "GPT-4o", 1000, 100, 400) == 3_000_000


def test_a_model_without_a_price_has_no_cost() -> None:
    assert cost_nanos(catalog.PRICES, "openai", "gpt-unknown", 10, 10, 0) is None
    assert cost_nanos(catalog.PRICES, "openai", "gpt-4o", 10, 10, 0) is not None


def test_the_override_file_accepts_objects_and_triples() -> None:
    parsed = pricing.parse(
        {"acme/m1": {"input": 1, "output": 2}, "Acme/M2": [1, 2, 0.5]}, source="--model-prices"
    )
    assert parsed == {"acme/m1": Price(1.0, 2.0, 1.0), "acme/m2": Price(1.0, 2.0, 0.5)}


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        ({"no-slash": [1, 2, 3]}, "prices['no-slash']"),
        ({"a/b": {"input": "cheap", "output": 1}}, "prices['a/b'].input"),
        ({"a/b": {"input": 1, "output": -1}}, "prices['a/b'].output"),
        ({"a/b": {"input": 1}}, "prices['a/b']"),
        ({"a/b": [1, 2, float("nan")]}, "prices['a/b'].cached_input"),
        ([1, 2], "prices"),
    ],
)
def test_bad_prices_name_the_entry(doc: object, field: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        pricing.parse(doc)
    assert field in [v.field for v in caught.value.violations]
