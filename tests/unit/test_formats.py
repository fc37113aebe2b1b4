"""The control plane's format and auth-style words against both contract spellings."""

from __future__ import annotations

import pytest
from keyway.v1 import providers_pb2 as ppb
from keyway.v1 import snapshot_pb2 as spb

from control_plane.domain import formats
from control_plane.domain.formats import ApiFormat, AuthStyle


@pytest.mark.parametrize("value", list(ApiFormat))
def test_every_format_has_both_contract_spellings(value: ApiFormat) -> None:
    api = formats.to_api_format(value)
    assert formats.from_api_format(api) is value
    # The same name in both enums: API_FORMAT_OPENAI <-> SNAPSHOT_FORMAT_OPENAI.
    snapshot_name = spb.SnapshotFormat.Name(formats.to_snapshot_format(value))
    assert snapshot_name == "SNAPSHOT_" + ppb.ApiFormat.Name(api).removeprefix("API_")


@pytest.mark.parametrize("value", list(AuthStyle))
def test_every_auth_style_has_both_contract_spellings(value: AuthStyle) -> None:
    api = formats.to_api_auth_style(value)
    assert formats.from_api_auth_style(api) is value
    snapshot_name = spb.SnapshotAuthStyle.Name(formats.to_snapshot_auth_style(value))
    assert snapshot_name == "SNAPSHOT_" + ppb.AuthStyle.Name(api)


def test_every_defined_contract_value_is_known() -> None:
    for number in ppb.ApiFormat.values():
        if number != ppb.API_FORMAT_UNSPECIFIED:
            assert formats.to_api_format(formats.from_api_format(number)) == number
    for style in ppb.AuthStyle.values():
        assert formats.to_api_auth_style(formats.from_api_auth_style(style)) == style


def test_unspecified_auth_style_is_none_and_unspecified_format_is_refused() -> None:
    assert formats.from_api_auth_style(ppb.AUTH_STYLE_UNSPECIFIED) is None
    with pytest.raises(ValueError, match="not an API format: 0"):
        formats.from_api_format(ppb.API_FORMAT_UNSPECIFIED)


@pytest.mark.parametrize("number", [3, 7, -1])
def test_undefined_numbers_are_refused(number: int) -> None:
    with pytest.raises(ValueError, match="not an API format"):
        formats.from_api_format(number)
    with pytest.raises(ValueError, match="not an auth style"):
        formats.from_api_auth_style(number)
