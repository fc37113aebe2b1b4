"""The control plane's words for API formats and auth styles, and their only translation.

Everything inside the control plane (catalog, records, validation, compiler) speaks
`ApiFormat` and `AuthStyle`. The contract spells them twice: `API_FORMAT_*`/`AUTH_STYLE_*`
in the admin API (also how stored custom providers encode them) and
`SNAPSHOT_FORMAT_*`/`SNAPSHOT_AUTH_STYLE_*` in the snapshot. The tables below are the
one place where those spellings meet this vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

from keyway.v1 import providers_pb2 as ppb
from keyway.v1 import snapshot_pb2 as spb


class ApiFormat(Enum):
    """The wire format a provider speaks (the value is the catalog's spelling)."""

    OPENAI = "openai"
    ANTHROPIC = "anthropic"


class AuthStyle(Enum):
    """How a provider key is presented upstream (the value is the catalog's spelling)."""

    BEARER = "bearer"
    X_API_KEY = "x-api-key"


_API_FORMATS: dict[ApiFormat, ppb.ApiFormat.ValueType] = {
    ApiFormat.OPENAI: ppb.API_FORMAT_OPENAI,
    ApiFormat.ANTHROPIC: ppb.API_FORMAT_ANTHROPIC,
}
_SNAPSHOT_FORMATS: dict[ApiFormat, spb.SnapshotFormat.ValueType] = {
    ApiFormat.OPENAI: spb.SNAPSHOT_FORMAT_OPENAI,
    ApiFormat.ANTHROPIC: spb.SNAPSHOT_FORMAT_ANTHROPIC,
}
_API_AUTH_STYLES: dict[AuthStyle, ppb.AuthStyle.ValueType] = {
    AuthStyle.BEARER: ppb.AUTH_STYLE_BEARER,
    AuthStyle.X_API_KEY: ppb.AUTH_STYLE_X_API_KEY,
}
_SNAPSHOT_AUTH_STYLES: dict[AuthStyle, spb.SnapshotAuthStyle.ValueType] = {
    AuthStyle.BEARER: spb.SNAPSHOT_AUTH_STYLE_BEARER,
    AuthStyle.X_API_KEY: spb.SNAPSHOT_AUTH_STYLE_X_API_KEY,
}
_FROM_API_FORMATS = {number: name for name, number in _API_FORMATS.items()}
_FROM_API_AUTH_STYLES = {number: name for name, number in _API_AUTH_STYLES.items()}


def to_api_format(value: ApiFormat) -> ppb.ApiFormat.ValueType:
    return _API_FORMATS[value]


def from_api_format(number: int) -> ApiFormat:
    """Raises ValueError for UNSPECIFIED or a number the contract does not define."""
    try:
        return _FROM_API_FORMATS[ppb.ApiFormat.ValueType(number)]
    except KeyError:
        raise ValueError(f"not an API format: {number}") from None


def to_api_auth_style(value: AuthStyle | None) -> ppb.AuthStyle.ValueType:
    """None (derive it from the formats) is AUTH_STYLE_UNSPECIFIED."""
    return ppb.AUTH_STYLE_UNSPECIFIED if value is None else _API_AUTH_STYLES[value]


def from_api_auth_style(number: int) -> AuthStyle | None:
    """AUTH_STYLE_UNSPECIFIED is None; raises ValueError for an undefined number."""
    if number == ppb.AUTH_STYLE_UNSPECIFIED:
        return None
    try:
        return _FROM_API_AUTH_STYLES[ppb.AuthStyle.ValueType(number)]
    except KeyError:
        raise ValueError(f"not an auth style: {number}") from None


def to_snapshot_format(value: ApiFormat) -> spb.SnapshotFormat.ValueType:
    return _SNAPSHOT_FORMATS[value]


def to_snapshot_auth_style(value: AuthStyle) -> spb.SnapshotAuthStyle.ValueType:
    return _SNAPSHOT_AUTH_STYLES[value]


def effective_auth_style(style: AuthStyle | None, formats: Sequence[ApiFormat]) -> AuthStyle:
    """The style a custom provider uses: the one it names, else its first format's usual
    one (x-api-key for Anthropic, bearer otherwise)."""
    if style is not None:
        return style
    if formats and formats[0] is ApiFormat.ANTHROPIC:
        return AuthStyle.X_API_KEY
    return AuthStyle.BEARER
