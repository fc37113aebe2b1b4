"""Formatting of admin API messages and parsing of JSON input files for the CLI."""

from __future__ import annotations

import json
import re

import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from keyway.v1 import (
    access_key_configurations_pb2,
    access_keys_pb2,
    provider_keys_pb2,
    providers_pb2,
)

from control_plane.cli import json_input, output

# 2023-11-14T22:13:20Z
_SECONDS = 1_700_000_000

# The README's configuration example, with key ids filled in.
_PRODUCT_EXAMPLE = """{
  "name": "Production",
  "access": {
    "providers": {"allow": ["openai", "anthropic"]},
    "models":    {"allow": ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"]}
  },
  "router": {
    "rules": [
      {"provider": "openai",
       "steps": [{"type": "user", "keySelectionStrategy": "ordered",
                  "keys": [{"id": "pk_primary"}, {"id": "pk_backup"}]}]},
      {"provider": "openai", "model": "gpt-4o-mini",
       "steps": [{"type": "user", "keys": [{"id": "pk_cheap"}]}]}
    ]
  }
}"""


def _parse_configuration(text: str) -> access_key_configurations_pb2.AccessKeyConfiguration:
    document = json_input.parse_json_object(text, "config.json")
    return json_input.json_to_message(
        document, access_key_configurations_pb2.AccessKeyConfiguration(), "config.json"
    )


def test_table_columns_are_aligned_without_trailing_spaces() -> None:
    table = output.render_table(["ID", "NAME"], [["pk_1", "short"], ["pk_12345", "x"]])
    assert table.splitlines() == [
        "ID        NAME",
        "pk_1      short",
        "pk_12345  x",
    ]


def test_table_with_no_rows_is_the_header() -> None:
    assert output.render_table(["ID", "NAME"], []) == "ID  NAME"


def test_timestamps_are_iso_utc_seconds() -> None:
    assert output.format_timestamp(_SECONDS) == "2023-11-14T22:13:20Z"


def test_empty_and_unset_fields_show_a_dash() -> None:
    key = provider_keys_pb2.ProviderKey(id="pk_1")
    assert output.format_field(key, "description") == "-"
    assert output.format_field(key, "last_used_time") == "-"
    assert output.format_field(key, "last_error") == "-"
    assert output.format_field(providers_pb2.CustomProvider(), "formats") == "-"
    assert output.format_field(providers_pb2.CustomProvider(), "auth_style") == "-"


def test_set_fields_are_formatted_for_humans() -> None:
    key = provider_keys_pb2.ProviderKey(
        redacted_value="sk-proj-ab***wxyz",
        create_time=Timestamp(seconds=_SECONDS, nanos=999),
        last_error=provider_keys_pb2.ProviderKeyError(
            status=401, reason="Provider returns an auth error", time=Timestamp(seconds=_SECONDS)
        ),
    )
    assert output.format_field(key, "redacted_value") == "sk-proj-ab***wxyz"
    assert output.format_field(key, "create_time") == "2023-11-14T22:13:20Z"
    assert output.format_field(key, "last_error") == (
        "401: Provider returns an auth error at 2023-11-14T22:13:20Z"
    )
    assert (
        output.format_field(
            access_key_configurations_pb2.AccessKeyConfiguration(), "access_key_count"
        )
        == "0"
    )
    assert output.format_field(providers_pb2.Provider(built_in=True), "built_in") == "yes"


def test_enums_are_short_lowercase_labels() -> None:
    provider = providers_pb2.CustomProvider(
        formats=[providers_pb2.API_FORMAT_OPENAI, providers_pb2.API_FORMAT_ANTHROPIC],
        auth_style=providers_pb2.AUTH_STYLE_X_API_KEY,
        models=[
            providers_pb2.ProviderModel(id="llama"),
            providers_pb2.ProviderModel(id="fast", upstream_id="llama-3-8b"),
        ],
    )
    assert output.format_field(provider, "formats") == "openai, anthropic"
    assert output.format_field(provider, "auth_style") == "x-api-key"
    assert output.format_field(provider, "models") == "llama, fast=llama-3-8b"


def test_enum_labels_round_trip_and_reject_unknown_labels() -> None:
    auth_style = providers_pb2.AuthStyle.DESCRIPTOR
    assert output.enum_labels(auth_style) == ("bearer", "x-api-key")
    for label in output.enum_labels(auth_style):
        assert output.enum_label(auth_style, output.enum_number(auth_style, label)) == label
    with pytest.raises(ValueError, match=r"'unspecified' \(choose from bearer, x-api-key\)"):
        output.enum_number(auth_style, "unspecified")


def test_configuration_detail_spells_out_scope_and_rules() -> None:
    configuration = _parse_configuration(_PRODUCT_EXAMPLE)
    configuration.id = "akc_1"
    lines = output.render_detail(configuration).splitlines()
    width = len("access_key_count")
    assert lines[0] == "id".ljust(width) + "  akc_1"
    assert "access".ljust(width) + "  providers: openai, anthropic" in lines
    assert " " * width + "  models: openai/gpt-4o, anthropic/claude-sonnet-4-5" in lines
    assert "router".ljust(width) + "  openai: user ordered [pk_primary, pk_backup]" in lines
    assert " " * width + "  openai/gpt-4o-mini: user ordered [pk_cheap]" in lines
    assert "etag".ljust(width) + "  -" in lines


def test_configuration_limits_are_spelled_out() -> None:
    limited = _parse_configuration('{"limits": {"requestsPerMinute": 600, "concurrency": 20}}')
    assert output.format_field(limited, "limits") == (
        "600 requests/minute, 20 in flight per access key"
    )
    rate_only = _parse_configuration('{"limits": {"requestsPerMinute": 60}}')
    assert output.format_field(rate_only, "limits") == "60 requests/minute per access key"


def test_absent_scope_means_everything_and_empty_allow_list_means_nothing() -> None:
    unrestricted = access_key_configurations_pb2.AccessKeyConfiguration()
    assert output.format_field(unrestricted, "access") == "everything allowed"
    assert output.format_field(unrestricted, "router") == "-"
    nothing = _parse_configuration('{"access": {"models": {"allow": []}}}')
    assert output.format_field(nothing, "access") == "providers: all\nmodels: none"


def test_json_output_is_camel_case_proto3_mapping() -> None:
    response = access_keys_pb2.CreateAccessKeyResponse(
        access_key=access_keys_pb2.AccessKey(id="ak_1", configuration_id="akc_1"),
        token="kwa_secret",
    )
    assert json.loads(output.to_json(response)) == {
        "accessKey": {"id": "ak_1", "configurationId": "akc_1"},
        "token": "kwa_secret",
    }
    keys = [provider_keys_pb2.ProviderKey(id="pk_1", provider_id="openai")]
    assert json.loads(output.to_json(keys)) == [{"id": "pk_1", "providerId": "openai"}]
    assert json.loads(output.to_json([])) == []


def test_product_example_parses_into_the_configuration_message() -> None:
    configuration = _parse_configuration(_PRODUCT_EXAMPLE)
    assert list(configuration.access.providers.allow) == ["openai", "anthropic"]
    first, second = configuration.router.rules
    assert first.steps[0].key_selection_strategy == "ordered"
    assert [key.id for key in first.steps[0].keys] == ["pk_primary", "pk_backup"]
    assert (second.model, second.steps[0].keys[0].id) == ("gpt-4o-mini", "pk_cheap")


def test_proto_field_names_and_nulls_are_accepted() -> None:
    configuration = _parse_configuration(
        '{"name": "n", "description": null,'
        ' "router": {"rules": [{"provider": "openai",'
        ' "steps": [{"key_selection_strategy": "ordered"}]}]}}'
    )
    assert configuration.router.rules[0].steps[0].key_selection_strategy == "ordered"
    assert configuration.description == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"name": "x",\n  "router": {]\n}', "config.json: malformed JSON at line 2, column 14:"),
        ("", "config.json: malformed JSON at line 1, column 1:"),
        ("[1, 2]", "config.json: expected a JSON object, got a list"),
    ],
)
def test_malformed_json_is_reported_with_line_and_column(text: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        json_input.parse_json_object(text, "config.json")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"nmae": "x"},
            "config.json: nmae: unknown field (expected one of: id, name, description,",
        ),
        (
            {"router": {"rules": [{"provider": "openai", "steps": [{"kys": []}]}]}},
            "config.json: router.rules[0].steps[0].kys: unknown field "
            "(expected one of: type, keySelectionStrategy, keys)",
        ),
        (
            {"router": {"rules": [{"steps": [{}, {"keySelectionStrategy": 5}]}]}},
            "config.json: router.rules[0].steps[1].keySelectionStrategy: "
            "expected a string, got a number",
        ),
        (
            {"access": {"providers": {"allow": "openai"}}},
            "config.json: access.providers.allow: expected a list, got a string",
        ),
        (
            {"access": {"models": {"allow": ["a", None]}}},
            "config.json: access.models.allow[1]: expected a string, got null",
        ),
        ({"router": []}, "config.json: router: expected an object, got a list"),
        (
            {"router": {"rules": [7]}},
            "config.json: router.rules[0]: expected an object, got a number",
        ),
        (
            {"accessKeyCount": True},
            "config.json: accessKeyCount: expected an integer, got a boolean",
        ),
        ({"createTime": "yesterday"}, "config.json: Failed to parse createTime field"),
    ],
)
def test_bad_documents_name_the_field(document: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(message)):
        json_input.json_to_message(
            document, access_key_configurations_pb2.AccessKeyConfiguration(), "config.json"
        )


def test_enum_values_are_checked_by_name() -> None:
    parsed = json_input.json_to_message(
        {"formats": ["API_FORMAT_ANTHROPIC", 1]}, providers_pb2.CustomProvider(), "p.json"
    )
    assert list(parsed.formats) == [
        providers_pb2.API_FORMAT_ANTHROPIC,
        providers_pb2.API_FORMAT_OPENAI,
    ]
    with pytest.raises(ValueError, match=r"^p.json: formats\[0\]: expected one of API_FORMAT_"):
        json_input.json_to_message(
            {"formats": ["openai"]}, providers_pb2.CustomProvider(), "p.json"
        )
