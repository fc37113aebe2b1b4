"""Checks shared by every resource: common fields, ids, page sizes."""

from __future__ import annotations

from .errors import InvalidArgument, Violations

NAME_MAX = 255
DESCRIPTION_MAX = 255
METADATA_MAX = 4096
SECRET_MAX = 8192

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def check_text(
    v: Violations, field: str, value: str, *, limit: int, required: bool = False
) -> None:
    if required and not value.strip():
        v.add(field, "is required")
    elif len(value) > limit:
        v.add(field, f"must be at most {limit} characters (got {len(value)})")


def check_common(
    v: Violations,
    prefix: str,
    *,
    name: str,
    description: str,
    metadata: str,
    name_field: str = "name",
    name_required: bool = True,
) -> None:
    """Validates name/description/metadata; `prefix` is e.g. `provider_key.`."""
    check_text(v, prefix + name_field, name, limit=NAME_MAX, required=name_required)
    check_text(v, prefix + "description", description, limit=DESCRIPTION_MAX)
    check_text(v, prefix + "metadata", metadata, limit=METADATA_MAX)


def _secret_character_problem(value: str) -> str | None:
    """What is wrong with the first character that cannot go into an HTTP header as-is.

    Names its kind and position only: the character itself is part of the secret.
    """
    for position, char in enumerate(value, start=1):
        if char.isspace():
            return f"a whitespace character at position {position}"
        if not char.isascii():
            return f"a non-ASCII character at position {position}"
        if not char.isprintable():
            return f"a control character at position {position}"
    return None


def check_secret(v: Violations, field: str, value: str) -> None:
    if not value:
        v.add(field, "is required")
    elif len(value) > SECRET_MAX:
        v.add(field, f"must be at most {SECRET_MAX} characters")
    elif problem := _secret_character_problem(value):
        # The value goes into an upstream auth header: a pasted key with a newline or
        # a stray control character would fail there, far from its cause.
        v.add(
            field,
            "must be printable ASCII without spaces, line breaks or control characters "
            f"(found {problem})",
        )


def page_size(value: int, field: str = "page_size") -> int:
    if value < 0:
        raise InvalidArgument.field(field, "must not be negative")
    if value > MAX_PAGE_SIZE:
        raise InvalidArgument.field(field, f"must be at most {MAX_PAGE_SIZE}")
    return value or DEFAULT_PAGE_SIZE


def require_id(value: str, field: str = "id") -> str:
    if not value:
        raise InvalidArgument.field(field, "is required")
    if len(value) > NAME_MAX:
        raise InvalidArgument.field(field, "is not a valid id")
    return value
