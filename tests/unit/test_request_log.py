"""Request log lines: valid JSON or key=value text whatever the values hold."""

from __future__ import annotations

import io
import json

from data_plane.usage.records import AttemptTrace, RequestTrace
from data_plane.usage.request_log import LogFormat, RequestLog
from data_plane.usage.tokens import Tokens

ODD = 'we"ird\\ model \u00e9\n'


def trace(tokens: Tokens | None) -> RequestTrace:
    t = RequestTrace("req_1", 1_764_547_200.5, 1.0, "/v1/chat/completions", "acct", "ak", "", ODD)
    a = AttemptTrace(1, "openai", "gpt-4o", "pk_1", 1.0, 1.001, 1.002)
    a.outcome, a.status, a.tokens, a.ended_at = "success", 200, tokens, 1.01
    t.attempts.append(a)
    t.status, t.ended = 200, 1.02
    return t


def line(form: LogFormat, t: RequestTrace) -> str:
    stream = io.StringIO()
    RequestLog(form, stream).write([t])
    return stream.getvalue()


def test_json_lines_parse_back_with_every_field() -> None:
    parsed = json.loads(line(LogFormat.JSON, trace(Tokens(3, 4, 1))))
    assert parsed["time"] == "2025-12-01T00:00:00.500+00:00"
    assert parsed["model"] == ODD
    assert (parsed["attempts"], parsed["status"], parsed["outcome"]) == (1, 200, "success")
    assert (parsed["duration_ms"], parsed["first_byte_ms"]) == (20.0, 2.0)
    assert (parsed["input_tokens"], parsed["output_tokens"], parsed["cached_tokens"]) == (3, 4, 1)


def test_unknown_tokens_are_left_out_not_zero() -> None:
    assert "input_tokens" not in json.loads(line(LogFormat.JSON, trace(None)))


def test_text_lines_quote_values_with_spaces_or_escapes() -> None:
    text = line(LogFormat.TEXT, trace(Tokens(3, 4)))
    assert text.count("\n") == 1
    assert f"model={json.dumps(ODD)} " in text
    assert " attempts=1 status=200 outcome=success " in text


class _CountingStream(io.StringIO):
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_a_digest_of_requests_is_one_write_whatever_the_streams_buffering() -> None:
    stream = _CountingStream()
    RequestLog(LogFormat.JSON, stream).write([trace(None), trace(Tokens(1, 2)), trace(None)])
    assert stream.writes == 1
    assert [json.loads(line)["request_id"] for line in stream.getvalue().splitlines()] == [
        "req_1"
    ] * 3
