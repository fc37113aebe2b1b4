"""Validation and normalisation of access-key configurations.

Pure: it sees the account only through `AccountView`. Field paths are
relative to the configuration, i.e. exactly what the user wrote in the JSON
file (`router.rules[1].steps[0].keys[0].id`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from keyway.v1 import access_key_configurations_pb2 as pb

from data_plane.shared.limits import MAX_CONCURRENCY, MAX_REQUESTS_PER_MINUTE

from .errors import FieldViolation, Violations

STEP_TYPES = ("user",)
STRATEGIES = ("ordered",)
DEFAULT_STRATEGY = "ordered"
MODEL_MAX = 255
MAX_RULES = 200
MAX_KEYS_PER_STEP = 100
MAX_ALLOW_ENTRIES = 1000


@dataclass(frozen=True, slots=True)
class AccountView:
    providers: frozenset[str]
    """Provider ids the account can use: built-ins plus its custom providers."""
    key_providers: Mapping[str, str]
    """Provider key id -> provider id, for every key of the account."""
    listed_models: Mapping[str, frozenset[str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """Provider id -> the lowercased model ids it lists (catalog or custom provider); a
    provider that lists none (pass-through only) is absent."""


def split_model_ref(entry: str) -> tuple[str, str] | None:
    """`provider/model` or `provider:model` -> (provider, lowercased model).

    The first separator wins, so model ids that contain `/` or `:` themselves
    (`openrouter/meta-llama/llama-3.3-70b-instruct`, `openai:ft:gpt-4o:acme`)
    survive intact.
    """
    cut = min((i for i in (entry.find("/"), entry.find(":")) if i >= 0), default=-1)
    if cut <= 0:
        return None
    provider, model = entry[:cut], entry[cut + 1 :]
    if not model or model != model.strip() or any(c.isspace() for c in model):
        return None
    return provider, model.lower()


def _check_provider(v: Violations, field: str, provider: str, view: AccountView) -> bool:
    if not provider:
        v.add(field, "is required")
        return False
    if provider not in view.providers:
        v.add(field, f"unknown provider '{provider}'")
        return False
    return True


def _normalise_access(access: pb.Access, view: AccountView, v: Violations) -> pb.Access:
    out = pb.Access()
    if access.HasField("providers"):
        out.providers.SetInParent()
        entries = access.providers.allow
        if len(entries) > MAX_ALLOW_ENTRIES:
            v.add("access.providers.allow", f"must have at most {MAX_ALLOW_ENTRIES} entries")
        for i, provider in enumerate(entries):
            if _check_provider(v, f"access.providers.allow[{i}]", provider, view) and (
                provider not in out.providers.allow
            ):
                out.providers.allow.append(provider)
    if access.HasField("models"):
        out.models.SetInParent()
        entries = access.models.allow
        if len(entries) > MAX_ALLOW_ENTRIES:
            v.add("access.models.allow", f"must have at most {MAX_ALLOW_ENTRIES} entries")
        for i, entry in enumerate(entries):
            field = f"access.models.allow[{i}]"
            ref = split_model_ref(entry)
            if ref is None:
                v.add(field, f"'{entry}' is not of the form provider/model or provider:model")
                continue
            provider, model = ref
            if len(model) > MODEL_MAX:
                v.add(field, f"model id must be at most {MODEL_MAX} characters")
            elif _check_provider(v, field, provider, view):
                canonical = f"{provider}/{model}"
                if canonical not in out.models.allow:
                    out.models.allow.append(canonical)
    return out


def _normalise_step(
    step: pb.RouterStep, field: str, provider: str, view: AccountView, v: Violations
) -> pb.RouterStep:
    out = pb.RouterStep(type=step.type, key_selection_strategy=step.key_selection_strategy)
    if not step.type:
        v.add(f"{field}.type", f"is required; one of: {', '.join(STEP_TYPES)}")
    elif step.type not in STEP_TYPES:
        v.add(f"{field}.type", f"unknown step type '{step.type}'; one of: {', '.join(STEP_TYPES)}")
    if not step.key_selection_strategy:
        out.key_selection_strategy = DEFAULT_STRATEGY
    elif step.key_selection_strategy not in STRATEGIES:
        v.add(
            f"{field}.key_selection_strategy",
            f"unknown strategy '{step.key_selection_strategy}'; one of: {', '.join(STRATEGIES)}",
        )
    if not step.keys:
        v.add(f"{field}.keys", "must list at least one provider key")
    elif len(step.keys) > MAX_KEYS_PER_STEP:
        v.add(f"{field}.keys", f"must list at most {MAX_KEYS_PER_STEP} keys")
    for k, ref in enumerate(step.keys):
        key_field = f"{field}.keys[{k}].id"
        owner = view.key_providers.get(ref.id)
        if not ref.id:
            v.add(key_field, "is required")
        elif owner is None:
            v.add(key_field, f"no provider key '{ref.id}' in this account")
        elif provider and owner != provider:
            v.add(key_field, f"provider key '{ref.id}' is for '{owner}', not '{provider}'")
        out.keys.add(id=ref.id)
    return out


def _normalise_router(router: pb.Router, view: AccountView, v: Violations) -> pb.Router:
    out = pb.Router()
    if len(router.rules) > MAX_RULES:
        v.add("router.rules", f"must have at most {MAX_RULES} rules")
    targets: dict[tuple[str, str], int] = {}
    for r, rule in enumerate(router.rules):
        field = f"router.rules[{r}]"
        known = _check_provider(v, f"{field}.provider", rule.provider, view)
        model = rule.model.lower()
        if any(c.isspace() for c in model) or len(model) > MODEL_MAX:
            v.add(f"{field}.model", f"must be a model id of at most {MODEL_MAX} characters")
        target = (rule.provider, model)
        if target in targets:
            what = f"{rule.provider}/{model}" if model else rule.provider
            v.add(
                field, f"duplicate rule for {what} (same target as router.rules[{targets[target]}])"
            )
        targets.setdefault(target, r)
        if not rule.steps:
            v.add(f"{field}.steps", "must have at least one step")
        seen: dict[str, str] = {}
        new_rule = out.rules.add(provider=rule.provider, model=model)
        for s, step in enumerate(rule.steps):
            step_field = f"{field}.steps[{s}]"
            new_rule.steps.append(
                _normalise_step(step, step_field, rule.provider if known else "", view, v)
            )
            for k, ref in enumerate(step.keys):
                key_field = f"{step_field}.keys[{k}].id"
                if ref.id and ref.id in seen:
                    v.add(key_field, f"key '{ref.id}' is already listed at {seen[ref.id]}")
                seen.setdefault(ref.id, key_field)
    return out


def _normalise_limits(limits: pb.Limits, v: Violations) -> pb.Limits:
    out = pb.Limits()
    for name, maximum in (
        ("requests_per_minute", MAX_REQUESTS_PER_MINUTE),
        ("concurrency", MAX_CONCURRENCY),
    ):
        if not limits.HasField(name):  # type: ignore[arg-type]
            continue
        value = getattr(limits, name)
        if not 1 <= value <= maximum:
            v.add(f"limits.{name}", f"must be between 1 and {maximum}; omit it for no limit")
        setattr(out, name, value)
    return out


def normalise(
    config: pb.AccessKeyConfiguration, view: AccountView, v: Violations
) -> pb.AccessKeyConfiguration:
    """A copy of `access`, `router` and `limits` in canonical form; problems go to `v`."""
    out = pb.AccessKeyConfiguration()
    if config.HasField("access"):
        out.access.CopyFrom(_normalise_access(config.access, view, v))
    out.router.CopyFrom(_normalise_router(config.router, view, v))
    if config.HasField("limits"):
        limits = _normalise_limits(config.limits, v)
        # An empty `limits: {}` is no limit at all: stored as absent.
        if limits.ListFields():
            out.limits.CopyFrom(limits)
    return out


def validated(candidate: pb.AccessKeyConfiguration, view: AccountView) -> pb.AccessKeyConfiguration:
    """What is stored for `candidate`: its canonical form, or every problem at once."""
    v = Violations()
    normal = normalise(candidate, view, v)
    v.raise_if_any("configuration is invalid", reason="INVALID_CONFIGURATION")
    return normal


def unlisted_models(access: pb.Access, view: AccountView) -> list[FieldViolation]:
    """Warnings for allowed models their provider does not list.

    Not errors: providers release models before any catalog lists them, and such a model
    is reached as `provider:model` (pass-through). But `openai/gpt-4oo` is more often a typo
    that silently allows nothing, so the write says so, with the closest listed model.
    """
    warnings = []
    for i, entry in enumerate(access.models.allow):
        ref = split_model_ref(entry)
        listed = view.listed_models.get(ref[0]) if ref is not None else None
        if ref is None or not listed or ref[1] in listed:
            continue
        provider, model = ref
        close = difflib.get_close_matches(model, sorted(listed), n=1, cutoff=0.6)
        hint = f"; did you mean '{provider}/{close[0]}'?" if close else ""
        warnings.append(
            FieldViolation(
                f"access.models.allow[{i}]",
                f"'{provider}' lists no model '{model}': requests reach it only by naming "
                f"{provider}:{model} (passed through unlisted){hint}",
            )
        )
    return warnings


def referenced_keys(router: pb.Router) -> frozenset[str]:
    return frozenset(key.id for rule in router.rules for step in rule.steps for key in step.keys)


def referenced_providers(config: pb.AccessKeyConfiguration) -> frozenset[str]:
    found = {rule.provider for rule in config.router.rules}
    found.update(config.access.providers.allow)
    for entry in config.access.models.allow:
        ref = split_model_ref(entry)
        if ref is not None:
            found.add(ref[0])
    return frozenset(found)
