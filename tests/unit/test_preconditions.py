"""The rules a write must pass, decided from the facts a store gathers (no store here)."""

from __future__ import annotations

import pytest
from keyway.v1 import access_key_configurations_pb2 as pb

from control_plane.domain import preconditions
from control_plane.domain.errors import (
    Aborted,
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
)


def _config(
    *, keys: tuple[str, ...] = (), providers: tuple[str, ...] = ()
) -> pb.AccessKeyConfiguration:
    config = pb.AccessKeyConfiguration()
    if keys:
        rule = config.router.rules.add(provider="openai")
        rule.steps.add(type="user", keys=[pb.KeyReference(id=k) for k in keys])
    for provider in providers:
        config.access.models.allow.append(f"{provider}/model")
    return config


def test_an_empty_etag_is_unconditional_and_a_stale_one_is_aborted() -> None:
    preconditions.check_etag("provider key", "pk_1", "7", "")
    preconditions.check_etag("provider key", "pk_1", "7", "7")
    with pytest.raises(Aborted, match="'pk_1' was changed since etag '6' \\(current etag '7'\\)"):
        preconditions.check_etag("provider key", "pk_1", "7", "6")


def test_an_account_holding_resources_needs_force() -> None:
    held = {"access keys": 0, "provider keys": 2, "custom providers": 1}
    with pytest.raises(FailedPrecondition) as caught:
        preconditions.check_account_empty("acct_1", held, force=False)
    assert caught.value.reason == "ACCOUNT_NOT_EMPTY"
    assert caught.value.subjects == ("acct_1",)
    assert "still holds 2 provider keys, 1 custom providers;" in caught.value.message
    preconditions.check_account_empty("acct_1", held, force=True)
    preconditions.check_account_empty("acct_1", dict.fromkeys(held, 0), force=False)


def test_the_last_operator_credential_stays() -> None:
    with pytest.raises(FailedPrecondition) as caught:
        preconditions.check_not_last_operator("op_1", 1)
    assert caught.value.reason == "LAST_OPERATOR_CREDENTIAL"
    preconditions.check_not_last_operator("op_1", 2)


def test_a_key_named_by_a_router_stays_and_the_users_are_listed() -> None:
    configurations = [
        ("akc_a", _config(keys=("pk_1", "pk_2"))),
        ("akc_b", _config(keys=("pk_2",))),
        ("akc_c", _config()),
    ]
    with pytest.raises(FailedPrecondition) as caught:
        preconditions.check_key_unused("pk_2", configurations)
    assert caught.value.reason == "PROVIDER_KEY_IN_USE"
    assert caught.value.subjects == ("akc_a", "akc_b")
    preconditions.check_key_unused("pk_3", configurations)


def test_a_linked_configuration_lists_at_most_twenty_keys_in_its_message() -> None:
    linked = [f"ak_{i:02d}" for i in range(25)]
    with pytest.raises(FailedPrecondition) as caught:
        preconditions.check_configuration_unlinked("akc_a", linked)
    assert caught.value.reason == "CONFIGURATION_IN_USE"
    assert caught.value.subjects == tuple(linked)
    assert "linked to 25 access key(s)" in caught.value.message
    assert "ak_19 …;" in caught.value.message
    assert "ak_20" not in caught.value.message
    preconditions.check_configuration_unlinked("akc_a", [])


@pytest.mark.parametrize(
    ("keys", "configurations", "subjects", "text"),
    [
        (["pk_1"], [], ("pk_1",), "used by provider key(s) pk_1"),
        ([], [("akc_a", _config(providers=("x-acme",)))], ("akc_a",), "configuration(s) akc_a"),
        (
            ["pk_1"],
            [("akc_a", _config(providers=("x-acme",)))],
            ("pk_1", "akc_a"),
            "provider key(s) pk_1; configuration(s) akc_a",
        ),
    ],
)
def test_a_custom_provider_in_use_stays(
    keys: list[str],
    configurations: list[tuple[str, pb.AccessKeyConfiguration]],
    subjects: tuple[str, ...],
    text: str,
) -> None:
    with pytest.raises(FailedPrecondition) as caught:
        preconditions.check_provider_unused("x-acme", keys, configurations)
    assert caught.value.reason == "PROVIDER_IN_USE"
    assert caught.value.subjects == subjects
    assert text in caught.value.message


def test_an_unused_custom_provider_may_go() -> None:
    preconditions.check_provider_unused("x-acme", [], [("akc_a", _config(providers=("x-b",)))])


@pytest.mark.parametrize(
    ("check", "error", "reason"),
    [
        (
            lambda: preconditions.check_provider_id_free("x-acme", "cp_1"),
            AlreadyExists,
            "PROVIDER_ID_IN_USE",
        ),
        (
            lambda: preconditions.check_provider_known("x-typo", {"openai"}, hint=True),
            InvalidArgument,
            "INVALID_ARGUMENT",
        ),
        (
            lambda: preconditions.check_configuration_exists("akc_gone", False),
            InvalidArgument,
            "INVALID_ARGUMENT",
        ),
    ],
)
def test_refusals_carry_their_reason(check: object, error: type[DomainError], reason: str) -> None:
    assert callable(check)
    with pytest.raises(error) as caught:
        check()
    assert caught.value.reason == reason


def test_unknown_provider_names_the_field_and_hints_only_when_asked() -> None:
    with pytest.raises(InvalidArgument) as caught:
        preconditions.check_provider_known("x-typo", {"openai"}, hint=True)
    assert [v.field for v in caught.value.violations] == ["provider_id"]
    assert "keyway admin providers list" in caught.value.message
    with pytest.raises(InvalidArgument) as plain:
        preconditions.check_provider_known("x-typo", {"openai"}, hint=False)
    assert plain.value.message == "provider_id: unknown provider 'x-typo'"
    preconditions.check_provider_known("openai", {"openai"}, hint=False)
    preconditions.check_provider_id_free("x-acme", None)
    preconditions.check_configuration_exists("akc_here", True)
