import copy
import itertools
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import given, settings
from hypothesis import strategies as st
from keyway.v1 import access_key_configurations_pb2 as pb

from control_plane.domain import configuration as cfg
from control_plane.domain.configuration import AccountView, normalise, split_model_ref
from control_plane.domain.errors import FieldViolation, InvalidArgument, Violations
from data_plane.shared import limits as shared

KEYS = {
    "pk_oa1": "openai",
    "pk_oa2": "openai",
    "pk_oa3": "openai",
    "pk_an1": "anthropic",
    "pk_an2": "anthropic",
    "pk_or1": "openrouter",
    "pk_ac1": "acme",
}
VIEW = AccountView(
    providers=frozenset({"openai", "anthropic", "openrouter", "acme"}), key_providers=KEYS
)


def _config(doc: dict[str, Any]) -> pb.AccessKeyConfiguration:
    return json_format.ParseDict(doc, pb.AccessKeyConfiguration())


def _run(
    config: pb.AccessKeyConfiguration, view: AccountView = VIEW
) -> tuple[pb.AccessKeyConfiguration, list[FieldViolation]]:
    v = Violations()
    out = normalise(config, view, v)
    try:
        v.raise_if_any()
    except InvalidArgument as err:
        return out, list(err.violations)
    assert not v
    return out, []


def _fields(doc: dict[str, Any], view: AccountView = VIEW) -> list[str]:
    return [x.field for x in _run(_config(doc), view)[1]]


def _rule(provider: str, *keys: str, model: str | None = None) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "provider": provider,
        "steps": [{"type": "user", "keys": [{"id": k} for k in keys]}],
    }
    if model is not None:
        rule["model"] = model
    return rule


# --- split_model_ref ---------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("openai/gpt-4o", ("openai", "gpt-4o")),
        ("openai:gpt-4o", ("openai", "gpt-4o")),
        ("openai:GPT-4o", ("openai", "gpt-4o")),
        ("OpenAI/gpt-4o", ("OpenAI", "gpt-4o")),  # provider ids are exact
        (
            "openrouter/meta-llama/llama-3.3-70b-instruct",
            ("openrouter", "meta-llama/llama-3.3-70b-instruct"),
        ),
        ("openai:ft:gpt-4o:acme", ("openai", "ft:gpt-4o:acme")),
        ("openai/ft:gpt-4o:acme", ("openai", "ft:gpt-4o:acme")),
        ("openai:meta/x", ("openai", "meta/x")),
        ("a/b", ("a", "b")),
    ],
)
def test_split_model_ref(entry: str, expected: tuple[str, str]) -> None:
    assert split_model_ref(entry) == expected


@pytest.mark.parametrize(
    "entry",
    [
        "gpt-4o",
        "",
        "/",
        ":",
        "/x",
        ":x",
        "/x:y",  # the first separator wins, even when it leaves no provider
        ":x/y",
        "openai/",
        "openai:",
        "openai/ with space",
        "openai/gpt 4o",
        "openai/gpt-4o ",
        "openai/gpt-4o\n",
        "openai/\tgpt-4o",
    ],
)
def test_split_model_ref_refuses(entry: str) -> None:
    assert split_model_ref(entry) is None


# --- normalisation -------------------------------------------------------------


def test_documented_example_is_valid_and_canonical() -> None:
    doc: dict[str, Any] = {
        "name": "Production",
        "access": {
            "providers": {"allow": ["openai", "anthropic"]},
            "models": {"allow": ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"]},
        },
        "router": {
            "rules": [
                {
                    "provider": "openai",
                    "steps": [
                        {
                            "type": "user",
                            "keySelectionStrategy": "ordered",
                            "keys": [{"id": "pk_oa1"}, {"id": "pk_oa2"}],
                        }
                    ],
                },
                _rule("openai", "pk_oa3", model="gpt-4o-mini"),
            ]
        },
    }
    out, violations = _run(_config(doc))
    assert violations == []
    expected = copy.deepcopy(doc)
    del expected["name"]
    expected["router"]["rules"][1]["steps"][0]["keySelectionStrategy"] = "ordered"
    assert json_format.MessageToDict(out) == expected


def test_model_entries_become_canonical_lowercase_and_deduplicated() -> None:
    out, violations = _run(
        _config(
            {
                "access": {
                    "models": {
                        "allow": [
                            "openai:GPT-4o",
                            "openai/gpt-4o",
                            "anthropic/Claude-Sonnet-4-5",
                            "openrouter/Meta-Llama/Llama-3.3-70B-Instruct",
                            "openai:ft:gpt-4o:acme",
                            "openai/FT:GPT-4O:ACME",
                        ]
                    }
                }
            }
        )
    )
    assert violations == []
    assert list(out.access.models.allow) == [
        "openai/gpt-4o",
        "anthropic/claude-sonnet-4-5",
        "openrouter/meta-llama/llama-3.3-70b-instruct",
        "openai/ft:gpt-4o:acme",
    ]
    assert not out.access.HasField("providers")


def test_provider_allow_list_is_deduplicated_in_order() -> None:
    out, violations = _run(
        _config({"access": {"providers": {"allow": ["anthropic", "openai", "anthropic"]}}})
    )
    assert violations == []
    assert list(out.access.providers.allow) == ["anthropic", "openai"]


@pytest.mark.parametrize(
    ("doc", "has_access", "has_providers", "has_models"),
    [
        ({}, False, False, False),
        ({"router": {}}, False, False, False),
        ({"access": {}}, True, False, False),
        ({"access": {"providers": {}}}, True, True, False),
        ({"access": {"providers": {"allow": []}}}, True, True, False),
        ({"access": {"models": {"allow": []}}}, True, False, True),
        ({"access": {"providers": {"allow": []}, "models": {}}}, True, True, True),
    ],
)
def test_presence_is_preserved(
    doc: dict[str, Any], has_access: bool, has_providers: bool, has_models: bool
) -> None:
    out, violations = _run(_config(doc))
    assert violations == []
    assert out.HasField("access") is has_access
    assert out.access.HasField("providers") is has_providers
    assert out.access.HasField("models") is has_models
    assert list(out.access.providers.allow) == []
    assert list(out.access.models.allow) == []


def test_only_access_router_and_limits_are_returned() -> None:
    config = _config({"name": "n", "description": "d", "metadata": "m", "id": "akc_x"})
    out, _ = _run(config)
    assert [fd.name for fd, _ in out.ListFields()] == ["router"]
    out, _ = _run(_config({"name": "n", "limits": {"concurrency": 2}}))
    assert [fd.name for fd, _ in out.ListFields()] == ["router", "limits"]


@pytest.mark.parametrize(
    ("limits", "stored"),
    [
        ({"requestsPerMinute": 1, "concurrency": 1}, {"requests_per_minute": 1, "concurrency": 1}),
        ({"requestsPerMinute": shared.MAX_REQUESTS_PER_MINUTE}, {"requests_per_minute": 1_000_000}),
        ({"concurrency": shared.MAX_CONCURRENCY}, {"concurrency": 100_000}),
        ({}, None),  # an empty object is no limit: stored as absent
    ],
)
def test_limits_within_range_are_kept(
    limits: dict[str, int], stored: dict[str, int] | None
) -> None:
    out, violations = _run(_config({"limits": limits}))
    assert violations == []
    assert out.HasField("limits") is (stored is not None)
    if stored is not None:
        assert {fd.name: value for fd, value in out.limits.ListFields()} == stored


@pytest.mark.parametrize(("given_strategy", "stored"), [(None, "ordered"), ("ordered", "ordered")])
def test_strategy_defaults_to_ordered(given_strategy: str | None, stored: str) -> None:
    step: dict[str, Any] = {"type": "user", "keys": [{"id": "pk_oa1"}]}
    if given_strategy is not None:
        step["keySelectionStrategy"] = given_strategy
    out, violations = _run(
        _config({"router": {"rules": [{"provider": "openai", "steps": [step]}]}})
    )
    assert violations == []
    assert out.router.rules[0].steps[0].key_selection_strategy == stored


def test_rule_model_is_lowercased_and_keys_keep_their_order() -> None:
    out, violations = _run(
        _config({"router": {"rules": [_rule("openai", "pk_oa3", "pk_oa1", model="GPT-4o")]}})
    )
    assert violations == []
    assert out.router.rules[0].model == "gpt-4o"
    assert [k.id for k in out.router.rules[0].steps[0].keys] == ["pk_oa3", "pk_oa1"]


def test_provider_and_model_rules_for_the_same_provider_coexist() -> None:
    rules = [
        _rule("openai", "pk_oa1"),
        _rule("openai", "pk_oa2", model="gpt-4o"),
        _rule("openai", "pk_oa3", model="gpt-4o-mini"),
        _rule("anthropic", "pk_an1"),
    ]
    assert _fields({"router": {"rules": rules}}) == []


def test_the_same_key_may_serve_several_rules() -> None:
    rules = [_rule("openai", "pk_oa1"), _rule("openai", "pk_oa1", model="gpt-4o")]
    assert _fields({"router": {"rules": rules}}) == []


R0 = "router.rules[0]"
S00 = "router.rules[0].steps[0]"


@pytest.mark.parametrize(
    ("doc", "fields"),
    [
        pytest.param(
            {"access": {"providers": {"allow": ["openai", "nope", ""]}}},
            ["access.providers.allow[1]", "access.providers.allow[2]"],
            id="unknown-or-empty-allowed-provider",
        ),
        pytest.param(
            {"access": {"providers": {"allow": ["OpenAI"]}}},
            ["access.providers.allow[0]"],
            id="provider-ids-are-exact",
        ),
        pytest.param(
            {"access": {"models": {"allow": ["openai/gpt-4o", "gpt-4o", "nope/x", "/x"]}}},
            ["access.models.allow[1]", "access.models.allow[2]", "access.models.allow[3]"],
            id="bad-model-entries",
        ),
        pytest.param(
            {"access": {"models": {"allow": ["openai/" + "m" * 256]}}},
            ["access.models.allow[0]"],
            id="model-entry-too-long",
        ),
        pytest.param(
            {"router": {"rules": [_rule("nope", "pk_oa1")]}},
            [f"{R0}.provider"],
            id="unknown-provider-in-rule",
        ),
        pytest.param(
            {"router": {"rules": [_rule("", "pk_oa1")]}},
            [f"{R0}.provider"],
            id="missing-provider-in-rule",
        ),
        pytest.param(
            {"router": {"rules": [_rule("openai", "pk_oa1", "pk_gone")]}},
            [f"{S00}.keys[1].id"],
            id="key-missing-from-account",
        ),
        pytest.param(
            {"router": {"rules": [_rule("openai", "pk_an1")]}},
            [f"{S00}.keys[0].id"],
            id="key-of-another-provider",
        ),
        pytest.param(
            {"router": {"rules": [_rule("openai", "")]}},
            [f"{S00}.keys[0].id"],
            id="empty-key-id",
        ),
        pytest.param(
            {
                "router": {
                    "rules": [
                        _rule("openai", "pk_oa1", model="gpt-4o"),
                        _rule("anthropic", "pk_an1"),
                        _rule("openai", "pk_oa2", model="GPT-4o"),
                    ]
                }
            },
            ["router.rules[2]"],
            id="duplicate-model-rule-case-insensitive",
        ),
        pytest.param(
            {"router": {"rules": [_rule("openai", "pk_oa1"), _rule("openai", "pk_oa2")]}},
            ["router.rules[1]"],
            id="duplicate-provider-rule",
        ),
        pytest.param(
            {"router": {"rules": [_rule("openai", "pk_oa1", "pk_oa2", "pk_oa1")]}},
            [f"{S00}.keys[2].id"],
            id="duplicate-key-in-step",
        ),
        pytest.param(
            {
                "router": {
                    "rules": [
                        {
                            "provider": "openai",
                            "steps": [
                                {"type": "user", "keys": [{"id": "pk_oa1"}]},
                                {"type": "user", "keys": [{"id": "pk_oa2"}, {"id": "pk_oa1"}]},
                            ],
                        }
                    ]
                }
            },
            [f"{R0}.steps[1].keys[1].id"],
            id="duplicate-key-across-steps",
        ),
        pytest.param(
            {"router": {"rules": [{"provider": "openai", "steps": []}]}},
            [f"{R0}.steps"],
            id="no-steps",
        ),
        pytest.param(
            {"router": {"rules": [{"provider": "openai", "steps": [{"type": "user"}]}]}},
            [f"{S00}.keys"],
            id="no-keys",
        ),
        pytest.param(
            {
                "router": {
                    "rules": [{"provider": "openai", "steps": [{"keys": [{"id": "pk_oa1"}]}]}]
                }
            },
            [f"{S00}.type"],
            id="missing-type",
        ),
        pytest.param(
            {
                "router": {
                    "rules": [
                        {
                            "provider": "openai",
                            "steps": [{"type": "managed", "keys": [{"id": "pk_oa1"}]}],
                        }
                    ]
                }
            },
            [f"{S00}.type"],
            id="unknown-type",
        ),
        pytest.param(
            {
                "router": {
                    "rules": [
                        {
                            "provider": "openai",
                            "steps": [
                                {
                                    "type": "user",
                                    "keySelectionStrategy": "random",
                                    "keys": [{"id": "pk_oa1"}],
                                }
                            ],
                        }
                    ]
                }
            },
            [f"{S00}.key_selection_strategy"],
            id="unknown-strategy",
        ),
        pytest.param(
            {"router": {"rules": [_rule("openai", "pk_oa1", model=" gpt-4o")]}},
            [f"{R0}.model"],
            id="model-with-spaces-at-ends",
        ),
        pytest.param(
            {"router": {"rules": [_rule("openai", "pk_oa1", model="m" * 256)]}},
            [f"{R0}.model"],
            id="model-too-long",
        ),
        pytest.param(
            {"limits": {"requestsPerMinute": 0, "concurrency": 0}},
            ["limits.requests_per_minute", "limits.concurrency"],
            id="zero-limits",
        ),
        pytest.param(
            {"limits": {"requestsPerMinute": -5, "concurrency": 100_001}},
            ["limits.requests_per_minute", "limits.concurrency"],
            id="limits-out-of-range",
        ),
    ],
)
def test_violation_field_paths(doc: dict[str, Any], fields: list[str]) -> None:
    assert _fields(doc) == fields


def test_violation_descriptions_name_the_problem() -> None:
    doc = {
        "router": {
            "rules": [
                _rule("openai", "pk_gone", "pk_an1"),
                _rule("nope", "pk_oa1"),
                {
                    "provider": "openai",
                    "model": "x",
                    "steps": [
                        {
                            "type": "magic",
                            "keySelectionStrategy": "random",
                            "keys": [{"id": "pk_oa1"}],
                        }
                    ],
                },
            ]
        }
    }
    descriptions = {v.field: v.description for v in _run(_config(doc))[1]}
    assert "pk_gone" in descriptions[f"{S00}.keys[0].id"]
    assert "'anthropic', not 'openai'" in descriptions[f"{S00}.keys[1].id"]
    assert "unknown provider 'nope'" in descriptions["router.rules[1].provider"]
    assert "'magic'" in descriptions["router.rules[2].steps[0].type"]
    assert "user" in descriptions["router.rules[2].steps[0].type"]
    assert "'random'" in descriptions["router.rules[2].steps[0].key_selection_strategy"]
    assert "ordered" in descriptions["router.rules[2].steps[0].key_selection_strategy"]


def test_all_violations_are_reported_together_in_order() -> None:
    doc = {
        "access": {
            "providers": {"allow": ["nope"]},
            "models": {"allow": ["gpt-4o"]},
        },
        "router": {
            "rules": [
                _rule("openai", "pk_an1"),
                {"provider": "openai", "steps": []},
                {"provider": "anthropic", "steps": [{"type": "x", "keys": []}]},
            ]
        },
    }
    config = _config(doc)
    v = Violations()
    normalise(config, VIEW, v)
    with pytest.raises(InvalidArgument) as caught:
        v.raise_if_any("invalid configuration")
    assert [x.field for x in caught.value.violations] == [
        "access.providers.allow[0]",
        "access.models.allow[0]",
        "router.rules[0].steps[0].keys[0].id",
        "router.rules[1]",
        "router.rules[1].steps",
        "router.rules[2].steps[0].type",
        "router.rules[2].steps[0].keys",
    ]
    assert caught.value.message.startswith("invalid configuration: access.providers.allow[0]: ")
    assert caught.value.message.endswith("(and 6 more)")


# --- size limits -----------------------------------------------------------------

MANY_KEYS = {f"pk_{i}": "openai" for i in range(cfg.MAX_KEYS_PER_STEP + 1)}
BIG_VIEW = AccountView(providers=VIEW.providers, key_providers=MANY_KEYS)


def _many_rules(n: int) -> dict[str, Any]:
    return {"router": {"rules": [_rule("openai", "pk_0", model=f"m{i}") for i in range(n)]}}


def _many_keys(n: int) -> dict[str, Any]:
    return {"router": {"rules": [_rule("openai", *[f"pk_{i}" for i in range(n)])]}}


def _many_providers(n: int) -> dict[str, Any]:
    return {"access": {"providers": {"allow": ["openai"] * n}}}


def _many_models(n: int) -> dict[str, Any]:
    return {"access": {"models": {"allow": [f"openai/m{i}" for i in range(n)]}}}


@pytest.mark.parametrize(
    ("build", "limit", "field"),
    [
        (_many_rules, cfg.MAX_RULES, "router.rules"),
        (_many_keys, cfg.MAX_KEYS_PER_STEP, S00 + ".keys"),
        (_many_providers, cfg.MAX_ALLOW_ENTRIES, "access.providers.allow"),
        (_many_models, cfg.MAX_ALLOW_ENTRIES, "access.models.allow"),
    ],
)
def test_size_limits(build: Any, limit: int, field: str) -> None:
    assert _fields(build(limit), BIG_VIEW) == []
    assert _fields(build(limit + 1), BIG_VIEW) == [field]


# --- references --------------------------------------------------------------------


def test_referenced_keys() -> None:
    config = _config(
        {
            "router": {
                "rules": [
                    {
                        "provider": "openai",
                        "steps": [
                            {"type": "user", "keys": [{"id": "pk_oa1"}, {"id": "pk_oa2"}]},
                            {"type": "user", "keys": [{"id": "pk_oa3"}]},
                        ],
                    },
                    _rule("openai", "pk_oa1", model="gpt-4o"),
                    _rule("anthropic", "pk_an1"),
                ]
            }
        }
    )
    assert cfg.referenced_keys(config.router) == {"pk_oa1", "pk_oa2", "pk_oa3", "pk_an1"}
    assert cfg.referenced_keys(pb.Router()) == frozenset()


def test_referenced_providers() -> None:
    config = _config(
        {
            "access": {
                "providers": {"allow": ["acme"]},
                "models": {"allow": ["openrouter/meta-llama/x", "deepseek:chat", "bare-model"]},
            },
            "router": {"rules": [_rule("openai", "pk_oa1"), _rule("anthropic", "pk_an1")]},
        }
    )
    assert cfg.referenced_providers(config) == {
        "acme",
        "openrouter",
        "deepseek",
        "openai",
        "anthropic",
    }
    assert cfg.referenced_providers(pb.AccessKeyConfiguration()) == frozenset()


# --- idempotence on generated valid configurations ------------------------------------

_PROVIDER_KEYS: dict[str, list[str]] = {}
for _key, _provider in KEYS.items():
    _PROVIDER_KEYS.setdefault(_provider, []).append(_key)
_MODELS = ["gpt-4o", "GPT-4o-Mini", "meta-llama/Llama-3.3-70B", "ft:gpt-4o:acme", "claude-x"]


@st.composite
def _valid_rule(draw: st.DrawFn, provider: str, model: str) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(_PROVIDER_KEYS[provider]), unique=True, min_size=1))
    cuts = sorted(draw(st.sets(st.integers(1, len(keys) - 1), max_size=2))) if len(keys) > 1 else []
    bounds = [0, *cuts, len(keys)]
    steps = []
    for start, end in itertools.pairwise(bounds):
        step: dict[str, Any] = {"type": "user", "keys": [{"id": k} for k in keys[start:end]]}
        if draw(st.booleans()):
            step["keySelectionStrategy"] = "ordered"
        steps.append(step)
    rule: dict[str, Any] = {"provider": provider, "steps": steps}
    if model:
        rule["model"] = model
    return rule


@st.composite
def _valid_config(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    providers = sorted(VIEW.providers)
    if draw(st.booleans()):
        access: dict[str, Any] = {}
        if draw(st.booleans()):
            access["providers"] = {"allow": draw(st.lists(st.sampled_from(providers), max_size=6))}
        if draw(st.booleans()):
            entries = st.tuples(
                st.sampled_from(providers), st.sampled_from("/:"), st.sampled_from(_MODELS)
            ).map("".join)
            access["models"] = {"allow": draw(st.lists(entries, max_size=6))}
        doc["access"] = access
    targets = draw(
        st.lists(
            st.tuples(st.sampled_from(providers), st.sampled_from(["", *_MODELS])),
            unique_by=lambda t: (t[0], t[1].lower()),
            max_size=6,
        )
    )
    doc["router"] = {"rules": [draw(_valid_rule(p, m)) for p, m in targets]}
    return doc


@settings(max_examples=150, deadline=None)
@given(_valid_config())
def test_normalise_is_idempotent(doc: dict[str, Any]) -> None:
    once, violations = _run(_config(doc))
    assert violations == []
    twice, violations = _run(once)
    assert violations == []
    assert twice == once
    assert once.HasField("access") == ("access" in doc)
    assert cfg.referenced_keys(once.router) == cfg.referenced_keys(_config(doc).router)
    for entry in once.access.models.allow:
        ref = split_model_ref(entry)
        assert ref is not None
        assert entry == f"{ref[0]}/{ref[1]}"


# --- warnings for models their provider does not list --------------------------------

LISTING = AccountView(
    providers=VIEW.providers,
    key_providers=KEYS,
    listed_models={"openai": frozenset({"gpt-4o", "gpt-4o-mini"}), "acme": frozenset({"rocket"})},
)


def test_an_allowed_model_its_provider_does_not_list_is_warned_about() -> None:
    access = _config(
        {
            "access": {
                "models": {
                    "allow": [
                        "openai/gpt-4o",
                        "openai/gpt-4oo",
                        "openai:GPT-4O-MINI",
                        "acme/jet",
                        "openrouter/anything-at-all",
                        "openai:ft:gpt-4o:acme",
                    ]
                }
            }
        }
    ).access
    warnings = [(w.field, w.description) for w in cfg.unlisted_models(access, LISTING)]
    assert warnings == [
        (
            "access.models.allow[1]",
            "'openai' lists no model 'gpt-4oo': requests reach it only by naming "
            "openai:gpt-4oo (passed through unlisted); did you mean 'openai/gpt-4o'?",
        ),
        (
            "access.models.allow[3]",
            "'acme' lists no model 'jet': requests reach it only by naming acme:jet "
            "(passed through unlisted)",
        ),
        (
            "access.models.allow[5]",
            "'openai' lists no model 'ft:gpt-4o:acme': requests reach it only by naming "
            "openai:ft:gpt-4o:acme (passed through unlisted); did you mean 'openai/gpt-4o'?",
        ),
    ]


def test_no_warning_without_a_model_scope_or_a_model_list() -> None:
    assert cfg.unlisted_models(pb.Access(), LISTING) == []
    unrestricted = _config({"access": {"providers": {"allow": ["openai"]}}}).access
    assert cfg.unlisted_models(unrestricted, LISTING) == []
    typo = _config({"access": {"models": {"allow": ["openai/gpt-4oo"]}}}).access
    assert cfg.unlisted_models(typo, VIEW) == []  # nothing listed: nothing to compare with


# --- validated: what a store keeps, or the error the caller sees --------------------------


def test_validated_returns_the_canonical_form() -> None:
    doc = {"router": {"rules": [_rule("openai", "pk_oa1", model="GPT-4o")]}}
    assert cfg.validated(_config(doc), VIEW) == _run(_config(doc))[0]


def test_validated_refuses_with_every_violation_and_the_configuration_reason() -> None:
    doc = {"router": {"rules": [_rule("openai", "pk_an1"), _rule("nope", "pk_oa1")]}}
    with pytest.raises(InvalidArgument) as caught:
        cfg.validated(_config(doc), VIEW)
    assert caught.value.reason == "INVALID_CONFIGURATION"
    assert [v.field for v in caught.value.violations] == _fields(doc)
    assert caught.value.message.startswith("configuration is invalid: ")
