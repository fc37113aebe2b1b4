"""Keyway's error catalog in each surface's envelope, and the final stream error event."""

from __future__ import annotations

import json
from typing import Any

import pytest

from data_plane.formats import ApiFormat
from data_plane.http.errors import envelope
from data_plane.http.sse import EventStyle, stream_error_event
from data_plane.routing.errors import CATALOG, KeywayError

STATUS = {
    "missing_access_key": 401,
    "malformed_access_key": 401,
    "invalid_access_key": 401,
    "access_key_disabled": 401,
    "not_ready": 503,
    "snapshot_expired": 503,
    "invalid_json": 400,
    "request_too_large": 413,
    "missing_model": 400,
    "invalid_model": 400,
    "invalid_models": 400,
    "duplicate_key": 400,
    "unknown_model": 400,
    "unknown_provider": 400,
    "unsupported_format": 400,
    "provider_not_allowed": 403,
    "model_not_allowed": 403,
    "concurrency_limit": 429,
    "rate_limit_exceeded": 429,
    "no_provider_key": 502,
    "all_rate_limited": 429,
    "deadline_exceeded": 504,
    "all_attempts_failed": 502,
    "upstream_stream_error": 502,
    "stream_too_long": 502,
    "request_timeout": 408,
    "headers_too_large": 431,
    "overloaded": 503,
    "not_found": 404,
    "method_not_allowed": 405,
}
# The `type` each provider itself sends for a status; SDKs pick the exception from the status.
OPENAI_TYPE = {
    400: "invalid_request_error",
    408: "invalid_request_error",
    431: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}
ANTHROPIC_TYPE = {
    400: "invalid_request_error",
    408: "invalid_request_error",
    431: "request_too_large",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    502: "api_error",
    503: "api_error",
    504: "timeout_error",
}
CODES = sorted(CATALOG)


def test_every_catalog_code_has_a_known_status() -> None:
    assert {code: entry.status for code, entry in CATALOG.items()} == STATUS


@pytest.mark.parametrize("code", CODES)
def test_catalog_entries_are_documented(code: str) -> None:
    entry = CATALOG[code]
    assert entry.meaning.strip()
    assert entry.check.strip()
    assert KeywayError(code, "m").status == entry.status


@pytest.mark.parametrize("param", [None, "model"])
@pytest.mark.parametrize("code", CODES)
def test_openai_envelope(code: str, param: str | None) -> None:
    error = KeywayError(code, f"message for {code}", param)
    doc = json.loads(envelope(error, ApiFormat.OPENAI))
    assert doc == {
        "error": {
            "message": f"message for {code}",
            "type": OPENAI_TYPE[STATUS[code]],
            "code": code,
            "param": param,
        }
    }


@pytest.mark.parametrize("code", CODES)
def test_anthropic_envelope(code: str) -> None:
    error = KeywayError(code, f"message for {code}", "model")
    doc = json.loads(envelope(error, ApiFormat.ANTHROPIC))
    assert set(doc) == {"type", "error"}
    assert doc["type"] == "error"
    inner = doc["error"]
    assert inner["type"] == ANTHROPIC_TYPE[STATUS[code]]
    assert inner["message"] == f"message for {code}"
    assert {"type", "message"} <= set(inner) <= {"type", "message", "code"}
    assert inner.get("code", code) == code


ATTEMPTS: list[dict[str, Any]] = [
    {"provider": "openai", "model": "gpt-4o", "key_id": "pk_1", "status": 429, "reason": "429"},
    {
        "provider": "openai",
        "model": "gpt-4o",
        "key_id": "pk_2",
        "status": None,
        "reason": "timeout",
    },
]


@pytest.mark.parametrize("fmt", list(ApiFormat))
def test_extra_members_appear_in_the_error_object(fmt: ApiFormat) -> None:
    error = KeywayError(
        "all_rate_limited", "every key was rate-limited", extra={"attempts": ATTEMPTS}
    )
    inner = json.loads(envelope(error, fmt))["error"]
    assert inner["attempts"] == ATTEMPTS
    assert inner["message"] == "every key was rate-limited"
    assert inner["type"] == "rate_limit_error"
    assert inner["code"] == "all_rate_limited"


@pytest.mark.parametrize("fmt", list(ApiFormat))
def test_envelope_is_utf8_json_and_escapes_anything(fmt: ApiFormat) -> None:
    message = "unknown model 'gp\"t\u00e9'\n</script>\\"
    body = envelope(KeywayError("unknown_model", message, "model"), fmt)
    assert body.decode("ascii")  # json.dumps escapes non-ASCII
    assert json.loads(body)["error"]["message"] == message


def test_keyway_error_can_be_raised_and_caught() -> None:
    with pytest.raises(KeywayError) as caught:
        raise KeywayError("not_found", "no such endpoint")
    assert caught.value.status == 404


# --- the final SSE error event -------------------------------------------------------------

MESSAGE = "upstream stream broke; the answer is incomplete"


def _parse_sse(event: bytes) -> tuple[str, dict[str, Any]]:
    """A strict reading of one SSE event: `event:` and one `data:` line, blank-line end.

    The OpenAI SDK raises APIError on data with an `error` member; the Anthropic
    SDK raises on `event: error`. Both split lines on any of CR, LF, CRLF.
    """
    assert event.endswith(b"\n\n")
    assert b"\r" not in event
    lines = event[:-2].decode("utf-8").split("\n")
    assert len(lines) == 2, lines
    name, data = lines
    assert name.startswith("event: ")
    assert data.startswith("data: ")
    parsed = json.loads(data[len("data: ") :])
    assert isinstance(parsed, dict)
    return name[len("event: ") :], parsed


@pytest.mark.parametrize("message", [MESSAGE, "two\nlines\r\nand \u00e9 \U0001f600"])
def test_openai_stream_error_event(message: str) -> None:
    event = stream_error_event(EventStyle.CHAT, message, "req_1")
    assert _parse_sse(event) == (
        "error",
        {
            "error": {
                "message": message,
                "type": "server_error",
                "code": "upstream_stream_error",
                "param": None,
            }
        },
    )


@pytest.mark.parametrize("message", [MESSAGE, "two\nlines\r\nand \u00e9 \U0001f600"])
def test_anthropic_stream_error_event(message: str) -> None:
    event = stream_error_event(EventStyle.MESSAGES, message, "req_1")
    assert _parse_sse(event) == (
        "error",
        {
            "type": "error",
            "error": {"type": "api_error", "message": message},
            "request_id": "req_1",
        },
    )
