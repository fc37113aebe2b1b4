"""What an attempt cost, from per-model prices. Pure.

Prices are US dollars per million tokens, for input, output and cached input, per
`provider/model` (the model as sent upstream, compared in lowercase). The built-in list
is in `catalog.json`; `keyway control-plane --model-prices FILE` overrides or adds
entries (`{"openai/gpt-4o": {"input": 2.5, "output": 10, "cached_input": 1.25}}`). A
model without a price has no cost, never a guessed one. Costs are whole billionths of a
dollar (nano-dollars), so sums stay exact.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument, Violations

_FIELDS = ("input", "output", "cached_input")


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float
    cached_input: float


Prices = Mapping[str, Price]
"""`provider/model` in lowercase -> price."""


def _rate(v: Violations, where: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        v.add(where, "must be a number of US dollars per million tokens")
        return 0.0
    if value < 0:
        v.add(where, "must not be negative")
    return float(value)


def parse(doc: object, *, source: str = "prices") -> dict[str, Price]:
    """`{"provider/model": {"input", "output", "cached_input"} or [in, out, cached]}`;
    errors name the entry (`prices["openai/gpt-4o"].output`)."""
    if not isinstance(doc, dict):
        raise InvalidArgument.field(source, 'must be an object of "provider/model" entries')
    v = Violations()
    prices: dict[str, Price] = {}
    for name, raw in doc.items():
        where = f"{source}[{name!r}]"
        provider, _, model = str(name).partition("/")
        if not provider or not model:
            v.add(where, 'the name must be "provider/model"')
            continue
        rates: dict[str, Any]
        if isinstance(raw, list) and len(raw) == 3:
            rates = dict(zip(_FIELDS, raw, strict=True))
        elif isinstance(raw, dict) and {"input", "output"} <= raw.keys() <= set(_FIELDS):
            rates = {"cached_input": raw["input"], **raw}
        else:
            v.add(where, "must be {input, output[, cached_input]} or [input, output, cached]")
            continue
        values = [_rate(v, f"{where}.{field}", rates[field]) for field in _FIELDS]
        prices[str(name).lower()] = Price(*values)
    v.raise_if_any("invalid model prices")
    return prices


def cost_nanos(
    prices: Prices, provider: str, model: str, input_tokens: int, output: int, cached: int
) -> int | None:
    """Nano-dollars of one attempt's tokens; None when the model has no price."""
    price = prices.get(f"{provider}/{model}".lower())
    if price is None:
        return None
    cached = min(cached, input_tokens)
    micro_dollars = (
        (input_tokens - cached) * price.input + cached * price.cached_input + output * price.output
    )
    # Per million tokens: a token at $1/M is 1e-6 dollars, i.e. 1000 nano-dollars.
    return round(micro_dollars * 1000)
