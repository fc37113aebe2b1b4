"""Relaying the response failover settled on, from the upstream to the client.

SSE is relayed on event boundaries, so that if the upstream breaks or stalls
mid-stream the client gets one clean error event in its API's shape, never half an
event; a JSON body that breaks ends the connection early instead, so the client's
parser fails rather than reading half an answer. Nothing is re-serialised.
"""

from __future__ import annotations

import asyncio
import logging

from data_plane.upstream.transport import Response
from data_plane.usage.records import STREAM_ERROR, RequestTrace
from data_plane.usage.tokens import TAIL_BYTES, AnswerUsage

from .context import ProxyContext
from .headers import relayed
from .sse import EventFramer, stream_error_event
from .surfaces import Surface
from .types import Headers, Send

log = logging.getLogger("keyway.data_plane.proxy")

_TOO_LONG = "ran too long"


class _UpstreamBrokeError(Exception):
    """The upstream broke or stalled after the response had started."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def _pull(ctx: ProxyContext, opened: Response, deadline: float) -> bytes:
    left = deadline - ctx.clock()
    if left <= 0:
        raise _UpstreamBrokeError(_TOO_LONG)
    try:
        return await opened.next_chunk(min(ctx.options.stream_idle_timeout, left))
    except asyncio.CancelledError:
        raise
    except Exception as error:
        if not isinstance(error, TimeoutError):
            raise _UpstreamBrokeError("broke") from error
        too_long = ctx.clock() >= deadline - 1e-3  # the timer may fire a hair early
        raise _UpstreamBrokeError(_TOO_LONG if too_long else "stalled") from error


async def relay(
    ctx: ProxyContext,
    surface: Surface,
    send: Send,
    opened: Response,
    first: bytes,
    out: Headers,
    trace: RequestTrace,
) -> None:
    """Sends `opened` to the client: its status, its headers plus `out`, its body.

    On the way, where the answer's token counts are is kept on the trace's last attempt
    (`AnswerUsage`): from each batch of whole events of a stream, or the last bytes of a
    JSON body."""
    request_id = trace.request_id
    attempt = trace.attempts[-1]
    headers = relayed(opened.raw_headers)
    is_sse = opened.headers.get("content-type", "").startswith("text/event-stream")
    framer = EventFramer() if is_sse else None
    counted = 200 <= opened.status < 300 and ctx.observer.counts_tokens
    usage = AnswerUsage(surface.format) if counted else None
    metrics = ctx.observer.metrics
    if is_sse and metrics is not None:
        metrics.active_streams += 1
    # The body's last two chunks: where a JSON answer's usage object is.
    before = last = final = b""
    deadline = ctx.clock() + ctx.options.max_stream_duration
    trace.status, trace.streamed = opened.status, is_sse
    try:
        await send(
            {"type": "http.response.start", "status": opened.status, "headers": headers + out}
        )
        # Only a served response has its first bytes read already; a
        # fail-fast one is relayed from its beginning.
        data = first or await _pull(ctx, opened, deadline)
        while data:
            if framer is not None:
                data = framer.feed(data)
                if usage is not None:
                    usage.feed(data)
            else:
                before = last
                last = data
            if opened.at_eof() and (framer is None or not framer.holding):
                # The end has arrived too: these bytes go out with it, in
                # one message (one write for a chunked body), below.
                final = data
                break
            if data:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            data = await _pull(ctx, opened, deadline)
        if framer is not None and framer.holding:
            rest = framer.rest()
            if usage is not None:
                usage.feed(rest)
            await send({"type": "http.response.body", "body": rest, "more_body": True})
    except _UpstreamBrokeError as error:
        opened.close()
        attempt.outcome, attempt.reason = STREAM_ERROR, f"Upstream stream {error.reason}"
        attempt.usage = usage
        attempt.ended_at = ctx.timer()
        log.warning("%s: upstream stream %s after the response started", request_id, error.reason)
        if not is_sse:
            raise
        if error.reason == _TOO_LONG:
            limit = ctx.options.max_stream_duration
            message = f"the stream ran past the proxy's limit of {limit:g}s"
            code = "stream_too_long"
        else:
            message, code = f"upstream stream {error.reason}", "upstream_stream_error"
        event = stream_error_event(
            surface.events, f"{message}; the answer is incomplete", request_id, code, framer
        )
        await send({"type": "http.response.body", "body": event, "more_body": True})
    except BaseException:
        # Cancelled (the client left) or the client side failed: stop the provider too.
        opened.close()
        attempt.usage = usage
        raise
    else:
        opened.release()
    finally:
        if is_sse and metrics is not None:
            metrics.active_streams -= 1
    if usage is not None and not attempt.ended_at:
        # Before the last send: a client that leaves during it was still answered in full.
        if framer is None:
            tail = last if len(last) >= TAIL_BYTES else before[-TAIL_BYTES:] + last
            usage.end_of_body(tail[-TAIL_BYTES:])
        attempt.usage = usage
    await send({"type": "http.response.body", "body": final, "more_body": False})
    if not attempt.ended_at:
        attempt.ended_at = ctx.timer()
