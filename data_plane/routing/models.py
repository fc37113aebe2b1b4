"""`GET /v1/models`: which models an access key may call. Pure.

Only models in the key's scope and with a provider key to use are listed, each under
the name a request would use to reach that provider.
"""

from __future__ import annotations

from .table import Caller


def callable_models(caller: Caller) -> list[tuple[str, str]]:
    """(listed id, provider id) for each model in scope that has a key to use.

    A model is listed by its bare id when a bare request would reach this
    provider, else as `provider:model`.
    """
    policy = caller.policy
    found: list[tuple[str, str]] = []
    for provider in caller.account.providers.values():
        if policy.allowed_providers is not None and provider.id not in policy.allowed_providers:
            continue
        for model in provider.listed:
            lowered = model.lower()
            if policy.allowed_models is not None and (
                f"{provider.id}/{lowered}" not in policy.allowed_models
            ):
                continue
            if not caller.key_ids(provider.id, model):
                continue
            owners = caller.account.bare_models.get(lowered, ())
            listed = model if owners and owners[0] == provider.id else f"{provider.id}:{model}"
            found.append((listed, provider.id))
    return found
