"""Request model(s) -> ordered failover candidates, with the access scope applied. Pure."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from data_plane.formats import ApiFormat

from .engine import Candidate
from .errors import KeywayError
from .table import Caller, Provider


@dataclass(frozen=True, slots=True)
class Resolution:
    candidates: tuple[Candidate, ...]
    rejected: tuple[str, ...]
    """Requested model names dropped by the access scope."""


@dataclass(frozen=True, slots=True)
class _Target:
    requested: str
    provider: Provider
    model: str
    """As the client named it (after the `provider:` prefix)."""
    upstream_model: str


def _suggest(caller: Caller, name: str) -> str:
    known = list(caller.account.bare_models)
    close = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown model '{name}'{hint} (use provider:model for unlisted models)"


def _target(caller: Caller, name: str) -> _Target:
    prefix, sep, rest = name.partition(":")
    providers = caller.account.providers
    if sep and rest and prefix in providers:
        provider = providers[prefix]
        return _Target(name, provider, rest, provider.models.get(rest.lower(), rest))
    listed = caller.account.bare_models.get(name.lower())
    if listed:
        provider = providers[listed[0]]
        return _Target(name, provider, name, provider.models[name.lower()])
    if sep and rest:
        raise KeywayError(
            "unknown_provider",
            f"unknown provider '{prefix}' in model '{name}' (write provider:model)",
            "model",
        )
    raise KeywayError("unknown_model", _suggest(caller, name), "model")


def _bare_target(caller: Caller, name: str, fmt: ApiFormat) -> _Target | None:
    """A bare id listed by several providers goes to the first speaking `fmt`."""
    listed = caller.account.bare_models.get(name.lower(), ())
    for provider_id in listed:
        provider = caller.account.providers[provider_id]
        if fmt in provider.formats:
            return _Target(name, provider, name, provider.models[name.lower()])
    return None


def resolve(caller: Caller, names: tuple[str, ...], fmt: ApiFormat) -> Resolution:
    """Candidates in request order; raises KeywayError when none is usable."""
    policy = caller.policy
    candidates: list[Candidate] = []
    rejected: list[str] = []
    denial: KeywayError | None = None
    wrong_format: list[str] = []
    seen: set[tuple[str, str]] = set()
    for name in dict.fromkeys(names):
        target = _target(caller, name)
        if fmt not in target.provider.formats:
            target = _bare_target(caller, name, fmt) or target
        provider = target.provider
        if fmt not in provider.formats:
            wrong_format.append(f"{name} ({provider.id})")
            continue
        if policy.allowed_providers is not None and provider.id not in policy.allowed_providers:
            rejected.append(name)
            denial = denial or KeywayError(
                "provider_not_allowed",
                f"provider '{provider.id}' is not allowed for this access key",
                "model",
            )
            continue
        canonical = f"{provider.id}/{target.model.lower()}"
        if policy.allowed_models is not None and canonical not in policy.allowed_models:
            rejected.append(name)
            denial = denial or KeywayError(
                "model_not_allowed",
                f"model '{canonical}' is not allowed for this access key",
                "model",
            )
            continue
        if (provider.id, target.upstream_model) in seen:
            continue
        seen.add((provider.id, target.upstream_model))
        candidates.append(
            Candidate(
                provider=provider.id,
                model=target.model,
                upstream_model=target.upstream_model,
                keys=caller.key_ids(provider.id, target.model),
            )
        )
    if candidates:
        return Resolution(tuple(candidates), tuple(rejected))
    if denial is not None:
        raise denial
    raise KeywayError(
        "unsupported_format",
        f"no candidate speaks the {fmt.value} API format: {', '.join(wrong_format)}",
        "model",
    )
