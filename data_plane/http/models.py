"""`GET /v1/models`: what this access key may call, in the caller's SDK's shape."""

from __future__ import annotations

import json

from data_plane.routing.table import Caller


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


def openai_list(models: list[tuple[str, str]]) -> bytes:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": p} for m, p in models]
    return json.dumps({"object": "list", "data": data}).encode()


def anthropic_list(models: list[tuple[str, str]]) -> bytes:
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"}
        for m, _ in models
    ]
    return json.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    ).encode()
