"""The built-in provider catalog. The providers themselves are data (catalog.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib import resources
from types import MappingProxyType
from typing import Any

from . import pricing
from .formats import ApiFormat, AuthStyle, effective_auth_style


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    upstream_id: str = ""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    id: str
    name: str
    base_url: str
    formats: tuple[ApiFormat, ...]
    auth_style: AuthStyle
    models: tuple[Model, ...]
    built_in: bool = True


def _parse(doc: Any) -> tuple[ProviderSpec, ...]:
    specs = []
    for raw in doc["providers"]:
        specs.append(
            ProviderSpec(
                id=raw["id"],
                name=raw["name"],
                base_url=raw["baseUrl"],
                formats=tuple(ApiFormat(f) for f in raw["formats"]),
                auth_style=AuthStyle(raw["authStyle"]),
                models=tuple(Model(m) for m in raw["models"]),
            )
        )
    return tuple(specs)


def _load() -> Any:
    text = resources.files(__package__).joinpath("catalog.json").read_text(encoding="utf-8")
    return json.loads(text)


_DOC = _load()
BUILT_IN: tuple[ProviderSpec, ...] = _parse(_DOC)
PRICES: Mapping[str, pricing.Price] = MappingProxyType(pricing.parse(_DOC["prices"]))
"""List prices of built-in models (see `pricing`)."""
BUILT_IN_IDS: frozenset[str] = frozenset(p.id for p in BUILT_IN)


def with_overrides(base_urls: Mapping[str, str]) -> tuple[ProviderSpec, ...]:
    """The catalog with the operator's base-URL overrides applied."""
    return tuple(replace(p, base_url=base_urls[p.id]) if p.id in base_urls else p for p in BUILT_IN)


def custom(
    provider_id: str,
    name: str,
    base_url: str,
    formats: tuple[ApiFormat, ...],
    auth_style: AuthStyle | None,
    models: tuple[Model, ...],
) -> ProviderSpec:
    """An account's custom provider as a catalog entry (its auth style made explicit)."""
    return ProviderSpec(
        id=provider_id,
        name=name,
        base_url=base_url,
        formats=formats,
        auth_style=effective_auth_style(auth_style, formats),
        models=models,
        built_in=False,
    )
