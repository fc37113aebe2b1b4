"""Failing over: upstream attempts, as the failover engine orders them, until one answers.

The engine (`routing.engine`, sans-I/O) says which key to try next, how long to wait,
or that nothing is left; this stage makes each attempt through the transport, reports
its outcome back, and hands the response it settles on to `relay`. An attempt counts
as answered only once its first body bytes are in: until then another key can still
take over without the client noticing.
"""

from __future__ import annotations

import asyncio
import logging

from data_plane.routing.engine import Attempt, Decision, Exhausted, Failover, Wait, attributed
from data_plane.routing.errors import KeywayError
from data_plane.routing.outcome import Outcome, OutcomeKind, classify
from data_plane.routing.resolve import Resolution
from data_plane.routing.table import Caller, Provider
from data_plane.upstream.transport import Response
from data_plane.usage.records import AttemptTrace, RequestTrace

from .body import RequestFields, needs_worker, rewrite
from .context import ProxyContext
from .errors import send_error
from .headers import forwarded, forwarded_query, retry_after_header, with_credentials
from .relay import relay
from .surfaces import Surface
from .types import Headers, Scope, Send

log = logging.getLogger("keyway.data_plane.proxy")


def _exhausted_error(result: Exhausted) -> tuple[KeywayError, Headers]:
    attempts = [
        {
            "provider": a.provider,
            "model": a.model,
            "provider_key_id": a.key_id,
            "status": a.status,
            "reason": a.reason,
        }
        for a in result.attempts
    ]
    error = KeywayError(result.code, result.message, None, {"attempts": attempts})
    extra = [] if result.retry_after is None else [retry_after_header(result.retry_after)]
    return error, extra


def _log_failed(
    request_id: str, attempt: Attempt, outcome: Outcome, then: Attempt | Wait | Exhausted
) -> None:
    if isinstance(then, Attempt):
        after = f"failing over to {then.candidate.provider} key {then.key_id}"
    elif isinstance(then, Wait):
        after = f"waiting {then.seconds:.3g}s for a rate limit to reset"
    else:
        after = f"nothing left to try ({then.code})"
    status = f"{outcome.status} " if outcome.status else ""
    log.info(
        "%s: %s key %s -> %s%s; %s",
        request_id,
        attempt.candidate.provider,
        attempt.key_id,
        status,
        outcome.reason,
        after,
    )


async def fail_over(
    ctx: ProxyContext,
    surface: Surface,
    scope: Scope,
    send: Send,
    caller: Caller,
    body: bytes,
    fields: RequestFields,
    resolution: Resolution,
    out: Headers,
    trace: RequestTrace,
) -> None:
    """Answers the request: relays the response settled on, or the error when none was."""
    request_id = trace.request_id
    engine = Failover(resolution.candidates, ctx.options.policy, ctx.cooldowns, ctx.clock())
    suffix = surface.upstream_suffix + forwarded_query(
        scope.get("query_string", b""), surface.query
    )
    # The same for every attempt: computed once per request, not per key.
    client_headers = forwarded(scope["headers"], ctx.options.forward_organization)
    # One rewritten body at a time, reused while attempts stay on its upstream model:
    # memory stays at twice the body however many fallbacks there are.
    payload_model: str | None = None
    payload = body
    tries = 0
    failed: tuple[Attempt, Outcome] | None = None
    while True:
        step = engine.next_attempt(ctx.clock())
        if failed is not None:
            # Logged once the next step is known: "failing over" only if there is one.
            _log_failed(request_id, *failed, step)
            failed = None
        if isinstance(step, Wait):
            await asyncio.sleep(step.seconds)
            continue
        if isinstance(step, Exhausted):
            error, extra = _exhausted_error(step)
            trace.error, trace.status = error.code, error.status
            if tries:
                out.append((b"x-keyway-attempts", str(tries).encode()))
            await send_error(send, error, surface.format, [*out, *extra])
            return
        tries += 1
        upstream_model = step.candidate.upstream_model
        if upstream_model != payload_model:
            payload = (
                await ctx.off_loop(body, rewrite, upstream_model, fields)
                if needs_worker(body)
                else rewrite(body, upstream_model, fields)
            )
            payload_model = upstream_model
        provider = caller.account.providers[step.candidate.provider]
        headers = with_credentials(client_headers, provider, caller.account.keys[step.key_id])
        attempt = AttemptTrace(tries, provider.id, upstream_model, step.key_id, ctx.timer())
        trace.attempts.append(attempt)
        if trace.span is not None and ctx.observer.tracing is not None:
            attempt.span = ctx.observer.tracing.attempt(trace.span, attempt, headers)  # type: ignore[arg-type]
        opened, first, outcome = await _attempt(
            ctx, step, provider, headers, payload, suffix, attempt
        )
        outcome = attributed(step, outcome)
        attempt.outcome, attempt.reason = outcome.kind.value, outcome.reason
        attempt.status = outcome.status or 0
        decision = engine.record(step, outcome, ctx.clock())
        if decision is Decision.CONTINUE:
            attempt.ended_at = ctx.timer()
            if opened is not None:
                # Pooled again when its (small) error body is complete.
                opened.release()
            failed = step, outcome
            continue
        assert opened is not None
        out.append((b"x-keyway-attempts", str(tries).encode()))
        if decision is Decision.SERVE:
            out += [
                (b"x-keyway-provider", step.candidate.provider.encode()),
                (b"x-keyway-model", step.candidate.upstream_model.encode()),
                (b"x-keyway-provider-key-id", step.key_id.encode()),
            ]
        await relay(ctx, surface, send, opened, first, out, trace)
        return


async def _attempt(
    ctx: ProxyContext,
    step: Attempt,
    provider: Provider,
    headers: dict[str, str],
    payload: bytes,
    suffix: str,
    trace: AttemptTrace,
) -> tuple[Response | None, bytes, Outcome]:
    """(the response, its first bytes if it is served, the outcome) of one attempt."""
    started = ctx.clock()
    opened = await ctx.upstream.open(
        provider.base_url + suffix,
        headers,
        payload,
        step.timeout,
        public_only=provider.public_only,
    )
    if isinstance(opened, Outcome):
        return None, b"", opened
    trace.headers_at = ctx.timer()
    outcome = classify(opened.status, opened.headers, ctx.wall())
    if outcome.kind is not OutcomeKind.SUCCESS:
        return opened, b"", outcome
    # Commit to this upstream only once it has produced its first byte:
    # until then another key can still take over invisibly.
    remaining = max(0.001, step.timeout - (ctx.clock() - started))
    try:
        first = await opened.next_chunk(remaining)
    except asyncio.CancelledError:
        # The client left while the provider was thinking: stop it now.
        opened.close()
        raise
    except Exception as error:  # mapped by the transport's own table
        opened.close()
        return None, b"", ctx.upstream.outcome_of(error)
    trace.first_byte_at = ctx.timer()
    return opened, first, outcome
