"""`keyway proxy --request-log json|text`: one line per model call.

Fields: `time` (UTC, ISO 8601), `request_id`, `account_id`, `access_key_id`, `surface`,
`model` (as requested), `provider`, `upstream_model`, `provider_key_id` (of the last
attempt), `attempts`, `status` (sent to the client, 0 for none), `outcome` (of the last
attempt, or the error code), `duration_ms`, `first_byte_ms` (of the last attempt), and
`input_tokens`, `output_tokens`, `cached_tokens` when the provider reported them. Ids
and counts only: never a key value, a token, a prompt or a completion. Lines are
written without a flush per request; the runner flushes every quarter second.
"""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime
from typing import TextIO

from .records import RequestTrace

# One encoder: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(separators=(",", ":"))


class LogFormat(enum.Enum):
    JSON = "json"
    TEXT = "text"
    OFF = "off"


def fields(trace: RequestTrace) -> dict[str, object]:
    last = trace.attempts[-1] if trace.attempts else None
    line: dict[str, object] = {
        "time": datetime.fromtimestamp(trace.time, UTC).isoformat(timespec="milliseconds"),
        "request_id": trace.request_id,
        "account_id": trace.account_id,
        "access_key_id": trace.access_key_id,
        "surface": trace.surface,
        "model": trace.requested_model,
        "provider": last.provider_id if last else "",
        "upstream_model": last.upstream_model if last else "",
        "provider_key_id": last.provider_key_id if last else "",
        "attempts": len(trace.attempts),
        "status": trace.status,
        "outcome": trace.error or (last.outcome if last else ""),
        "duration_ms": round((trace.ended - trace.started) * 1000, 3),
        "first_byte_ms": round((last.first_byte_at - last.started) * 1000, 3)
        if last and last.first_byte_at
        else 0.0,
    }
    tokens = last.tokens if last else None
    if tokens is not None:
        line["input_tokens"] = tokens.input
        line["output_tokens"] = tokens.output
        line["cached_tokens"] = tokens.cached_input
    return line


class RequestLog:
    def __init__(self, form: LogFormat, stream: TextIO) -> None:
        self.form = form
        self.stream = stream

    def write(self, trace: RequestTrace) -> None:
        line = fields(trace)
        if self.form is LogFormat.JSON:
            text = _ENCODER.encode(line)
        else:
            text = " ".join(f"{name}={value}" for name, value in line.items() if value != "")
        self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()
