"""The ASGI endpoint of one surface: a model call through every stage, in order.

authenticate (`routing.authenticate`) → admit (`routing.admission`) → read the body
(`receive`) → read its routing fields (`body`) → resolve the models
(`routing.resolve`) → fail over (`failover`) → relay (`relay`); any refusal on the
way is rendered by `errors` in the surface's envelope.

A raw ASGI callable: the hot path reads the routing table once, does dict lookups,
and hands bytes between the client and the transport without building request or
response objects.
"""

from __future__ import annotations

import asyncio
import time

from data_plane.routing.admission import Refusal, Ticket
from data_plane.routing.authenticate import authenticate
from data_plane.routing.errors import KeywayError
from data_plane.routing.resolve import resolve
from data_plane.usage.records import CLIENT_CANCELLED, RequestTrace

from .body import needs_worker, read_fields
from .context import ProxyContext
from .errors import send_error
from .failover import fail_over
from .headers import CORS, retry_after_header
from .receive import ClientGoneError, read_body
from .request_id import HEADER, new_request_id
from .surfaces import Surface
from .types import Headers, Receive, Scope, Send


class Endpoint:
    """`POST <surface.path>`, answered with `ctx`."""

    def __init__(self, surface: Surface, ctx: ProxyContext) -> None:
        self.surface = surface
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = new_request_id()
        ctx, surface = self.ctx, self.surface
        trace = RequestTrace(request_id, ctx.wall(), ctx.timer(), surface.path)
        tracing = ctx.observer.tracing
        if tracing is not None:
            trace.span = tracing.request(scope["headers"], trace)
        out: Headers = [(HEADER, request_id.encode()), *CORS]
        task = asyncio.current_task()
        assert task is not None
        watcher: asyncio.Task[None] | None = None
        ticket: Ticket | None = None
        gone = False

        async def watch() -> None:
            nonlocal gone
            while (await receive())["type"] != "http.disconnect":
                pass
            gone = True
            task.cancel()

        try:
            # The state's clock is time.monotonic, like the snapshot client that updates it.
            caller = authenticate(ctx.state.serving(time.monotonic()), scope["headers"])
            admitted = ctx.admission.admit(
                caller.access_key_id,
                caller.account.id,
                ctx.clock(),
                concurrency=caller.policy.concurrency,
                requests_per_minute=caller.policy.requests_per_minute,
            )
            trace.account_id = caller.account.id
            trace.access_key_id = caller.access_key_id
            trace.configuration_id = caller.policy.configuration_id
            if isinstance(admitted, Refusal):
                error = KeywayError(admitted.code, admitted.message)
                trace.error, trace.status = error.code, error.status
                retry = retry_after_header(admitted.retry_after)
                await send_error(send, error, surface.format, [*out, retry])
                return
            ticket = admitted
            body = await read_body(receive, scope["headers"], ctx.options.max_body_bytes)
            watcher = asyncio.create_task(watch())
            fields = (
                await ctx.off_loop(body, read_fields) if needs_worker(body) else read_fields(body)
            )
            trace.requested_model = fields.model
            resolution = resolve(caller, (fields.model, *fields.fallbacks), surface.format)
            if resolution.rejected:
                out.append((b"x-keyway-rejected-models", ", ".join(resolution.rejected).encode()))
            await fail_over(ctx, surface, scope, send, caller, body, fields, resolution, out, trace)
        except KeywayError as error:
            trace.error, trace.status = error.code, error.status
            await send_error(send, error, surface.format, out)
        except ClientGoneError:
            trace.error = CLIENT_CANCELLED
        except asyncio.CancelledError:
            if not gone:
                raise
            # The client left: upstream work was cancelled with this task.
            task.uncancel()
            trace.error = CLIENT_CANCELLED
            if trace.attempts and not trace.attempts[-1].ended_at:
                attempt = trace.attempts[-1]
                attempt.outcome, attempt.reason = CLIENT_CANCELLED, "The client disconnected"
                attempt.ended_at = ctx.timer()
        finally:
            trace.ended = ctx.timer()
            ctx.observer.finish(trace)
            if watcher is not None:
                watcher.cancel()
            if ticket is not None:
                ctx.admission.release(ticket)
