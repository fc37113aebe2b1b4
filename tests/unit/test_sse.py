"""Server-sent events: cutting a stream at event boundaries, and the events that end it."""

from __future__ import annotations

import json

from data_plane.http.sse import EventFramer, EventStyle, complete_events, stream_error_event


def test_only_whole_events_pass_and_a_boundary_may_straddle_chunks() -> None:
    framer = EventFramer()
    assert framer.feed(b"data: 1\n\ndata: 2\r") == b"data: 1\n\n"
    assert framer.holding
    assert framer.rest() == b"data: 2\r"
    assert framer.feed(b"\n\r") == b""
    assert framer.feed(b"\ndata: 3") == b"data: 2\r\n\r\n"
    assert (framer.events, framer.first, framer.last) == (2, b"data: 1\n\n", b"data: 2\r\n\r\n")
    assert complete_events(b"a\n\nb\r\n\r\nc", 0) == 8


def test_a_stream_without_boundaries_is_let_through_past_the_limit() -> None:
    framer = EventFramer(limit=8)
    assert framer.feed(b"12345") == b""
    assert framer.feed(b"6789") == b"123456789"  # not SSE after all: nothing held back
    assert not framer.holding


def _events(raw: bytes) -> list[dict[str, object]]:
    return [json.loads(line[6:]) for line in raw.split(b"\n") if line.startswith(b"data: ")]


def test_a_responses_stream_ends_with_error_then_failed_for_the_response_it_announced() -> None:
    framer = EventFramer()
    created = {"type": "response.created", "response": {"id": "resp_1"}, "sequence_number": 0}
    framer.feed(b"event: response.created\ndata: " + json.dumps(created).encode() + b"\n\n")
    framer.feed(b'data: {"type": "response.output_text.delta", "sequence_number": 4}\n\n')
    error, failed = _events(stream_error_event(EventStyle.RESPONSES, "broke", "req_1", "x", framer))
    assert (error["type"], error["code"], error["sequence_number"]) == ("error", "x", 5)
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == 6
    assert failed["response"] == {
        "id": "resp_1",
        "status": "failed",
        "error": {"code": "server_error", "message": "broke"},
    }


def test_a_responses_error_numbers_itself_even_without_readable_events() -> None:
    framer = EventFramer()
    framer.feed(b"data: not json\n\n")
    (only,) = _events(stream_error_event(EventStyle.RESPONSES, "m", "req_1", framer=framer))
    assert only["sequence_number"] == 1  # one event went before it
    (first,) = _events(stream_error_event(EventStyle.RESPONSES, "m", "req_1"))
    assert first["sequence_number"] == 0
    empty = EventFramer()
    empty.feed(b"\n\n")
    (after_blank,) = _events(stream_error_event(EventStyle.RESPONSES, "m", "req_1", framer=empty))
    assert after_blank["type"] == "error"
