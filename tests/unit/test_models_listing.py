"""`GET /v1/models`: the models one access key may call, in each SDK's list shape."""

from __future__ import annotations

import json

import pytest
from keyway.v1 import snapshot_pb2 as spb

from data_plane.formats import ApiFormat
from data_plane.http.models import anthropic_list, openai_list
from data_plane.routing.models import callable_models
from data_plane.routing.resolve import resolve
from data_plane.routing.table import Caller
from tests.unit.snapshots import (
    ANTHROPIC_FMT,
    configuration,
    key,
    provider,
    route,
    single_caller,
)

OPENAI_MODELS = [
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("text-embedding-3-small", "openai"),
]
CLAUDE = [("claude-sonnet-4-5", "anthropic")]
GATEWAY = provider(
    "gateway",
    models=["claude-sonnet-4-5", "GPT-4o", "Mistral-Large", ("llama-3", "meta/llama-3")],
)
GATEWAY_MODELS = [
    ("gateway:claude-sonnet-4-5", "gateway"),  # a bare request goes to anthropic
    ("gateway:GPT-4o", "gateway"),  # ... or to openai
    ("Mistral-Large", "gateway"),  # listed as written
    ("llama-3", "gateway"),
]
ALL_KEYS = [key("pk_o1", "openai"), key("pk_a1", "anthropic"), key("pk_g1", "gateway")]

OPENAI = ApiFormat.OPENAI
ANTHROPIC = ApiFormat.ANTHROPIC


def _caller(
    keys: list[spb.SnapshotProviderKey], config: spb.SnapshotConfiguration | None = None
) -> Caller:
    return single_caller(keys=keys, config=config, custom_providers=[GATEWAY])


@pytest.mark.parametrize(
    ("keys", "config", "expected"),
    [
        ([], None, []),
        ([key("pk_o1", "openai")], None, OPENAI_MODELS),
        ([key("pk_a1", "anthropic")], None, CLAUDE),
        (ALL_KEYS, None, OPENAI_MODELS + CLAUDE + GATEWAY_MODELS),
        (ALL_KEYS, configuration("c", providers=["anthropic"]), CLAUDE),
        (
            ALL_KEYS,
            configuration("c", providers=["gateway", "openai"]),
            OPENAI_MODELS + GATEWAY_MODELS,
        ),
        (ALL_KEYS, configuration("c", providers=[]), []),
        (ALL_KEYS, configuration("c", models=[]), []),
        (
            ALL_KEYS,
            configuration("c", models=["openai/gpt-4o", "gateway/gpt-4o", "anthropic/x"]),
            [("gpt-4o", "openai"), ("gateway:GPT-4o", "gateway")],
        ),
        (
            ALL_KEYS,
            configuration("c", providers=["openai"], models=["openai/gpt-4o", "gateway/llama-3"]),
            [("gpt-4o", "openai")],
        ),
        # Routes only reorder keys: a model with any key to use is listed.
        (
            ALL_KEYS,
            configuration("c", routes=[route("openai", "gpt-4o", ["pk_o1"])]),
            OPENAI_MODELS + CLAUDE + GATEWAY_MODELS,
        ),
    ],
)
def test_callable_models(
    keys: list[spb.SnapshotProviderKey],
    config: spb.SnapshotConfiguration | None,
    expected: list[tuple[str, str]],
) -> None:
    assert callable_models(_caller(keys, config)) == expected


def test_every_listed_model_resolves_to_its_provider() -> None:
    caller = _caller(ALL_KEYS)
    for listed, provider_id in callable_models(caller):
        provider_ = caller.account.providers[provider_id]
        for fmt in provider_.formats:
            (candidate,) = resolve(caller, (listed,), fmt).candidates
            assert candidate.provider == provider_id
            assert candidate.keys


def test_bare_ids_follow_the_first_listing_provider() -> None:
    both = provider("both", formats=[ANTHROPIC_FMT], models=["claude-sonnet-4-5"])
    caller = single_caller(
        keys=[key("pk_a1", "anthropic"), key("pk_b1", "both")], custom_providers=[both]
    )
    assert callable_models(caller) == [
        ("claude-sonnet-4-5", "anthropic"),
        ("both:claude-sonnet-4-5", "both"),
    ]
    assert resolve(caller, ("claude-sonnet-4-5",), ANTHROPIC).candidates[0].provider == "anthropic"


MODELS = [("gpt-4o", "openai"), ("anthropic:claude-x", "anthropic")]


def test_openai_list_shape() -> None:
    assert json.loads(openai_list(MODELS)) == {
        "object": "list",
        "data": [
            {"id": "gpt-4o", "object": "model", "created": 0, "owned_by": "openai"},
            {"id": "anthropic:claude-x", "object": "model", "created": 0, "owned_by": "anthropic"},
        ],
    }
    assert json.loads(openai_list([])) == {"object": "list", "data": []}


def test_anthropic_list_shape() -> None:
    assert json.loads(anthropic_list(MODELS)) == {
        "data": [
            {
                "type": "model",
                "id": "gpt-4o",
                "display_name": "gpt-4o",
                "created_at": "1970-01-01T00:00:00Z",
            },
            {
                "type": "model",
                "id": "anthropic:claude-x",
                "display_name": "anthropic:claude-x",
                "created_at": "1970-01-01T00:00:00Z",
            },
        ],
        "has_more": False,
        "first_id": "gpt-4o",
        "last_id": "anthropic:claude-x",
    }
    assert json.loads(anthropic_list([])) == {
        "data": [],
        "has_more": False,
        "first_id": None,
        "last_id": None,
    }
