"""A proxy's usage batch, checked and turned into store records.

Attempts are priced here (`domain.pricing`), with the control plane's prices, so every
proxy's records cost the same. The keys' "last used / last error" shown by
`provider-keys list` and `access-keys list` are derived from the same attempts: a
success is the key's last success; an outcome that is the key's or its provider's fault
is its last error; a request the client got wrong (`fail_fast`), one cut by its own
deadline, and one the client cancelled say nothing about the key.
"""

from __future__ import annotations

from keyway.v1 import discovery_pb2 as pb

from control_plane.domain.errors import Violations
from control_plane.domain.pricing import Prices, cost_nanos
from control_plane.store.records import AccessKeyUsage, KeyUsage, TokenCounts, UsageAttempt

MAX_ATTEMPTS = 5000
"""Per batch; proxies send at most 1000."""
_MAX_TEXT = 255
_NOT_THE_KEYS_FAULT = frozenset({"fail_fast", "deadline", "client_cancelled"})
_TEXT_FIELDS = (
    "request_id",
    "account_id",
    "access_key_id",
    "configuration_id",
    "surface",
    "requested_model",
    "provider_id",
    "upstream_model",
    "provider_key_id",
    "outcome",
)


_MAX_MS = 1e10
"""Longer than any attempt (four months): a larger or non-finite timing is stored as 0."""


def _ms(value: float) -> float:
    # Proxies send timings unrounded (rounding costs them per request); kept to the µs.
    return round(value, 3) if 0.0 < value < _MAX_MS else 0.0


def _tokens(record: pb.AttemptRecord) -> TokenCounts | None:
    if not record.HasField("tokens"):
        return None
    t = record.tokens
    return TokenCounts(
        max(0, t.input), max(0, t.output), max(0, t.cached_input), max(0, t.reasoning)
    )


def _check_texts(v: Violations, i: int, texts: tuple[str, ...]) -> None:
    for name, text in zip(_TEXT_FIELDS, texts, strict=True):
        if len(text) > _MAX_TEXT:
            v.add(f"attempts[{i}].{name}", f"must be at most {_MAX_TEXT} characters")


def attempts_of(request: pb.ReportUsageRequest, prices: Prices) -> list[UsageAttempt]:
    """The batch's attempts, priced; InvalidArgument naming the field when malformed.

    A proxy sends about one record per request it serves: each field is read from the
    message once (a read makes a Python object each time)."""
    v = Violations()
    if request.attempts and not (0 < len(request.batch_id) <= 64):
        v.add("batch_id", "is required with attempts, at most 64 characters")
    if len(request.attempts) > MAX_ATTEMPTS:
        v.add("attempts", f"at most {MAX_ATTEMPTS} per batch")
    v.raise_if_any("invalid usage batch")
    node_id = request.node_id
    found: list[UsageAttempt] = []
    for i, r in enumerate(request.attempts):
        texts = (
            r.request_id,
            r.account_id,
            r.access_key_id,
            r.configuration_id,
            r.surface,
            r.requested_model,
            r.provider_id,
            r.upstream_model,
            r.provider_key_id,
            r.outcome,
        )
        if max(map(len, texts)) > _MAX_TEXT:
            _check_texts(v, i, texts)
        (request_id, account, access_key, configuration, surface, requested, provider,
         upstream, key, outcome) = texts  # fmt: skip
        if not request_id or not account:
            v.add(f"attempts[{i}]", "request_id and account_id are required")
        attempt = r.attempt
        if attempt < 0:
            v.add(f"attempts[{i}].attempt", "must not be negative")
        tokens = _tokens(r)
        cost = None
        if tokens is not None and provider:
            cost = cost_nanos(
                prices, provider, upstream, tokens.input, tokens.output, tokens.cached_input
            )
        when = r.request_time
        found.append(
            UsageAttempt(
                request_id=request_id,
                time_us=when.seconds * 1_000_000 + when.nanos // 1000,
                node_id=node_id,
                account_id=account,
                access_key_id=access_key,
                configuration_id=configuration,
                surface=surface,
                requested_model=requested,
                provider_id=provider,
                upstream_model=upstream,
                provider_key_id=key,
                attempt=attempt,
                outcome=outcome,
                reason=r.reason[:_MAX_TEXT],
                status=r.status,
                headers_ms=_ms(r.headers_ms),
                first_byte_ms=_ms(r.first_byte_ms),
                duration_ms=_ms(r.duration_ms),
                tokens=tokens,
                cost_nanos=cost,
                final=r.final,
            )
        )
    v.raise_if_any("invalid usage batch")
    return found


def key_usage(attempts: list[UsageAttempt]) -> tuple[list[KeyUsage], list[AccessKeyUsage]]:
    """What the attempts say of each provider key and access key, latest first wins."""
    keys: dict[str, KeyUsage] = {}
    access: dict[str, int] = {}
    for a in attempts:
        # Attempts of one request share its arrival time: the attempt number orders them.
        when = a.time_us + a.attempt
        if a.access_key_id:
            access[a.access_key_id] = max(access.get(a.access_key_id, 0), when)
        if not a.provider_key_id:
            continue
        old = keys.get(a.provider_key_id)
        used = max(when, old.last_used_us or 0) if old else when
        success = old.last_success_us if old else None
        error = (old.error_status, old.error_reason, old.error_time_us) if old else (0, "", None)
        if a.outcome == "success":
            success = max(when, success or 0)
        elif a.outcome not in _NOT_THE_KEYS_FAULT and when > (error[2] or 0):
            error = (a.status, a.reason, when)
        keys[a.provider_key_id] = KeyUsage(a.provider_key_id, used, *error, success)
    return list(keys.values()), [AccessKeyUsage(k, t) for k, t in access.items()]
