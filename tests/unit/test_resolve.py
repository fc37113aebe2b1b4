"""Model names -> failover candidates: catalog lookup, formats, access scope, key order."""

from __future__ import annotations

import pytest
from keyway.v1.snapshot_pb2 import SnapshotConfiguration

from data_plane.formats import ApiFormat
from data_plane.routing.engine import Candidate
from data_plane.routing.errors import KeywayError
from data_plane.routing.resolve import Resolution, resolve
from data_plane.routing.table import Caller
from tests.unit.snapshots import (
    ANTHROPIC_FMT,
    GPT_4O_UPSTREAM,
    OPENAI_FMT,
    configuration,
    key,
    openai_and_anthropic_keys,
    provider,
    route,
    single_caller,
)

OPENAI_KEYS = ("pk_o1", "pk_o2", "pk_o3")
ANTHROPIC_KEYS = ("pk_a1",)

# A custom OpenAI-format gateway that also lists Claude, under its own upstream id.
GATEWAY = provider(
    "gateway",
    models=[("claude-sonnet-4-5", "anthropic/claude-sonnet-4.5"), "Llama-3.1-8B"],
)
BOTH_FORMATS = provider("both", formats=(OPENAI_FMT, ANTHROPIC_FMT), models=["dual-model"])

OPENAI = ApiFormat.OPENAI
ANTHROPIC = ApiFormat.ANTHROPIC


def _caller(config: SnapshotConfiguration | None = None) -> Caller:
    keys = [*openai_and_anthropic_keys(), key("pk_g1", "gateway"), key("pk_b1", "both")]
    return single_caller(keys=keys, config=config, custom_providers=[GATEWAY, BOTH_FORMATS])


CALLER = _caller()


def _scoped(providers: list[str] | None = None, models: list[str] | None = None) -> Caller:
    return _caller(config=configuration("cfg_1", providers=providers, models=models))


def _error(caller: Caller, names: tuple[str, ...], fmt: ApiFormat = OPENAI) -> KeywayError:
    with pytest.raises(KeywayError) as caught:
        resolve(caller, names, fmt)
    return caught.value


def _one(caller: Caller, name: str, fmt: ApiFormat = OPENAI) -> Candidate:
    resolution = resolve(caller, (name,), fmt)
    assert resolution.rejected == ()
    (candidate,) = resolution.candidates
    return candidate


# --- names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "expected"),
    [
        # Bare catalog ids: the listing provider, upstream id from the catalog, any case.
        ("gpt-4o", OPENAI, Candidate("openai", "gpt-4o", GPT_4O_UPSTREAM, OPENAI_KEYS)),
        ("GPT-4O", OPENAI, Candidate("openai", "GPT-4O", GPT_4O_UPSTREAM, OPENAI_KEYS)),
        (
            "gpt-4o-mini",
            OPENAI,
            Candidate("openai", "gpt-4o-mini", "gpt-4o-mini", OPENAI_KEYS),
        ),
        (
            "text-embedding-3-small",
            OPENAI,
            Candidate("openai", "text-embedding-3-small", "text-embedding-3-small", OPENAI_KEYS),
        ),
        (
            "claude-sonnet-4-5",
            ANTHROPIC,
            Candidate("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", ANTHROPIC_KEYS),
        ),
        (
            "llama-3.1-8b",
            OPENAI,
            Candidate("gateway", "llama-3.1-8b", "Llama-3.1-8B", ("pk_g1",)),
        ),
        # provider:model is explicit; listed ids map to upstream ids, unlisted pass through.
        (
            "openai:gpt-4o",
            OPENAI,
            Candidate("openai", "gpt-4o", GPT_4O_UPSTREAM, OPENAI_KEYS),
        ),
        (
            "openai:GPT-4o",
            OPENAI,
            Candidate("openai", "GPT-4o", GPT_4O_UPSTREAM, OPENAI_KEYS),
        ),
        (
            "openai:gpt-5-preview",
            OPENAI,
            Candidate("openai", "gpt-5-preview", "gpt-5-preview", OPENAI_KEYS),
        ),
        (
            "openai:ft:gpt-4o:acme",
            OPENAI,
            Candidate("openai", "ft:gpt-4o:acme", "ft:gpt-4o:acme", OPENAI_KEYS),
        ),
        (
            "anthropic:claude-opus-9",
            ANTHROPIC,
            Candidate("anthropic", "claude-opus-9", "claude-opus-9", ANTHROPIC_KEYS),
        ),
        # An explicit provider wins over the bare-id owner of the rest.
        ("gateway:gpt-4o", OPENAI, Candidate("gateway", "gpt-4o", "gpt-4o", ("pk_g1",))),
        # A bare id listed by two providers goes to the one speaking the surface's format.
        (
            "claude-sonnet-4-5",
            OPENAI,
            Candidate("gateway", "claude-sonnet-4-5", "anthropic/claude-sonnet-4.5", ("pk_g1",)),
        ),
        (
            "gateway:claude-sonnet-4-5",
            OPENAI,
            Candidate("gateway", "claude-sonnet-4-5", "anthropic/claude-sonnet-4.5", ("pk_g1",)),
        ),
        # A provider speaking both formats serves both surfaces.
        ("dual-model", OPENAI, Candidate("both", "dual-model", "dual-model", ("pk_b1",))),
        (
            "dual-model",
            ANTHROPIC,
            Candidate("both", "dual-model", "dual-model", ("pk_b1",)),
        ),
    ],
)
def test_name_resolves_to_candidate(name: str, fmt: ApiFormat, expected: Candidate) -> None:
    assert _one(CALLER, name, fmt) == expected


@pytest.mark.parametrize(
    ("name", "code", "fragments"),
    [
        ("gpt4o", "unknown_model", ("'gpt4o'", "did you mean 'gpt-4o'", "provider:model")),
        ("GPT-4o-mni", "unknown_model", ("did you mean 'gpt-4o-mini'",)),
        ("claude-sonet-4-5", "unknown_model", ("did you mean 'claude-sonnet-4-5'",)),
        ("zzzzzz", "unknown_model", ("'zzzzzz'", "provider:model")),
        ("openai:", "unknown_model", ("'openai:'",)),
        ("nope:gpt-4o", "unknown_provider", ("'nope'", "provider:model")),
        ("OpenAI:gpt-4o", "unknown_provider", ("'OpenAI'",)),  # provider ids are exact
        (":gpt-4o", "unknown_provider", ("''",)),
        ("ft:gpt-4o:acme", "unknown_provider", ("'ft'",)),
    ],
)
def test_unknown_names(name: str, code: str, fragments: tuple[str, ...]) -> None:
    error = _error(CALLER, (name,))
    assert (error.code, error.status, error.param) == (code, 400, "model")
    for fragment in fragments:
        assert fragment in error.message
    if name == "zzzzzz":
        assert "did you mean" not in error.message


def test_unknown_fallback_fails_the_request() -> None:
    assert _error(CALLER, ("gpt-4o", "gpt-4x0")).code == "unknown_model"


def test_custom_models_are_suggested() -> None:
    assert "did you mean 'llama-3.1-8b'" in _error(CALLER, ("llama-3.1-8",)).message


# --- fallbacks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("gpt-4o", "gpt-4o-mini"), [("openai", "gpt-4o"), ("openai", "gpt-4o-mini")]),
        (("gpt-4o-mini", "gpt-4o"), [("openai", "gpt-4o-mini"), ("openai", "gpt-4o")]),
        (
            ("gpt-4o", "claude-sonnet-4-5", "openai:o1"),
            [("openai", "gpt-4o"), ("gateway", "claude-sonnet-4-5"), ("openai", "o1")],
        ),
        # The same target twice, however it is spelled, is one candidate.
        (
            ("gpt-4o", "gpt-4o-mini", "openai:gpt-4o", "GPT-4o", "gpt-4o"),
            [("openai", "gpt-4o"), ("openai", "gpt-4o-mini")],
        ),
        (("openai:o1", "openai:o1"), [("openai", "o1")]),
        # Anthropic-only models are not candidates on an OpenAI surface.
        (("anthropic:claude-sonnet-4-5", "gpt-4o-mini"), [("openai", "gpt-4o-mini")]),
    ],
)
def test_fallbacks_follow_in_request_order(
    names: tuple[str, ...], expected: list[tuple[str, str]]
) -> None:
    resolution = resolve(CALLER, names, OPENAI)
    assert [(c.provider, c.model) for c in resolution.candidates] == expected
    assert resolution.rejected == ()


@pytest.mark.parametrize(
    ("names", "fmt", "fragments"),
    [
        (
            ("anthropic:claude-sonnet-4-5",),
            OPENAI,
            ("openai", "anthropic:claude-sonnet-4-5"),
        ),
        (
            ("anthropic:claude-opus-9", "anthropic:claude-x"),
            OPENAI,
            ("anthropic:claude-x",),
        ),
        (("gpt-4o",), ANTHROPIC, ("anthropic", "gpt-4o (openai)")),
        (("openai:gpt-4o", "gateway:llama-3.1-8b"), ANTHROPIC, ("gateway:llama-3.1-8b",)),
    ],
)
def test_no_candidate_in_the_surface_format(
    names: tuple[str, ...], fmt: ApiFormat, fragments: tuple[str, ...]
) -> None:
    error = _error(CALLER, names, fmt)
    assert (error.code, error.status) == ("unsupported_format", 400)
    for fragment in fragments:
        assert fragment in error.message


# --- scope ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("providers", "models", "names", "code"),
    [
        (["anthropic"], None, ("gpt-4o",), "provider_not_allowed"),
        (["anthropic"], None, ("openai:ft:gpt-4o:acme",), "provider_not_allowed"),
        ([], None, ("gpt-4o",), "provider_not_allowed"),
        ([], None, ("claude-sonnet-4-5",), "provider_not_allowed"),
        (None, ["openai/gpt-4o-mini"], ("gpt-4o",), "model_not_allowed"),
        (None, ["openai/gpt-4o-mini"], ("gateway:gpt-4o-mini",), "model_not_allowed"),
        (None, [], ("gpt-4o-mini",), "model_not_allowed"),
        (["openai"], ["openai/gpt-4o"], ("gpt-4o-mini", "gpt-4o-mini"), "model_not_allowed"),
        # The first denial in request order is the one reported.
        (["openai"], ["openai/gpt-4o"], ("gateway:x", "gpt-4o-mini"), "provider_not_allowed"),
        (["openai"], ["openai/gpt-4o"], ("gpt-4o-mini", "gateway:x"), "model_not_allowed"),
        # A scope denial is reported rather than a format mismatch.
        (["anthropic"], None, ("anthropic:claude-opus-9", "gpt-4o"), "provider_not_allowed"),
    ],
)
def test_scope_denial_is_403(
    providers: list[str] | None, models: list[str] | None, names: tuple[str, ...], code: str
) -> None:
    error = _error(_scoped(providers, models), names)
    assert (error.code, error.status, error.param) == (code, 403, "model")


@pytest.mark.parametrize(
    ("providers", "models", "names", "allowed", "rejected"),
    [
        (None, None, ("gpt-4o", "gateway:x"), ["gpt-4o", "x"], []),
        (["openai"], None, ("gateway:x", "gpt-4o"), ["gpt-4o"], ["gateway:x"]),
        (
            None,
            ["openai/gpt-4o-mini"],
            ("gpt-4o", "GPT-4o-Mini", "openai:gpt-4o"),
            ["GPT-4o-Mini"],
            ["gpt-4o", "openai:gpt-4o"],
        ),
        (
            ["openai", "gateway"],
            ["openai/gpt-4o", "gateway/claude-sonnet-4-5", "openai/ft:gpt-4o:acme"],
            ("openai:ft:gpt-4o:acme", "gpt-4o-mini", "claude-sonnet-4-5", "gpt-4o"),
            ["ft:gpt-4o:acme", "claude-sonnet-4-5", "gpt-4o"],
            ["gpt-4o-mini"],
        ),
    ],
)
def test_scope_drops_and_names_rejected_candidates(
    providers: list[str] | None,
    models: list[str] | None,
    names: tuple[str, ...],
    allowed: list[str],
    rejected: list[str],
) -> None:
    resolution = resolve(_scoped(providers, models), names, OPENAI)
    assert [c.model for c in resolution.candidates] == allowed
    assert list(resolution.rejected) == rejected


def test_allow_lists_are_case_insensitive_for_models_only() -> None:
    caller = _scoped(["openai"], ["openai/gpt-4o-mini"])
    assert _one(caller, "GPT-4O-MINI").upstream_model == "gpt-4o-mini"
    assert _one(caller, "openai:Gpt-4o-Mini").model == "Gpt-4o-Mini"


# --- keys ----------------------------------------------------------------------------------

ROUTED = configuration(
    "cfg_routes",
    routes=[
        route("openai", "gpt-4o-mini", ["pk_o2"], ["pk_o1"]),
        route("openai", "", ["pk_o3", "pk_o1"]),
    ],
)


@pytest.mark.parametrize(
    ("routed", "name", "fmt", "keys"),
    [
        (False, "gpt-4o", OPENAI, ("pk_o1", "pk_o2", "pk_o3")),  # creation order
        (False, "claude-sonnet-4-5", ANTHROPIC, ("pk_a1",)),
        (True, "gpt-4o-mini", OPENAI, ("pk_o2", "pk_o1")),  # model route, steps in order
        (True, "GPT-4o-Mini", OPENAI, ("pk_o2", "pk_o1")),
        (True, "openai:gpt-4o-mini", OPENAI, ("pk_o2", "pk_o1")),
        (True, "gpt-4o", OPENAI, ("pk_o3", "pk_o1")),  # provider route
        (True, "openai:o1", OPENAI, ("pk_o3", "pk_o1")),
        (True, "claude-sonnet-4-5", ANTHROPIC, ("pk_a1",)),  # no rule: account default
    ],
)
def test_key_order(routed: bool, name: str, fmt: ApiFormat, keys: tuple[str, ...]) -> None:
    caller = single_caller(keys=openai_and_anthropic_keys(), config=ROUTED if routed else None)
    assert _one(caller, name, fmt).keys == keys


def test_provider_without_keys_is_still_a_candidate() -> None:
    caller = single_caller(keys=[key("pk_o1", "openai")])
    assert resolve(caller, ("claude-sonnet-4-5",), ANTHROPIC) == Resolution(
        (Candidate("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", ()),), ()
    )
