"""UsageService: totals per bucket and group, and every attempt of one request."""

from __future__ import annotations

import time

from keyway.v1 import usage_pb2 as pb
from keyway.v1 import usage_pb2_grpc

from control_plane.domain import usage
from control_plane.domain.errors import NotFound, Violations
from control_plane.domain.fields import require_id
from control_plane.domain.tokens import TokenKind
from control_plane.store.records import (
    UsageAttempt,
    UsageBucket,
    UsageDimension,
    UsageQuery,
    UsageTotals,
)

from .auth import Principal
from .base import Servicer, rpc, timestamp

_BUCKETS = {
    pb.USAGE_BUCKET_UNSPECIFIED: UsageBucket.NONE,
    pb.USAGE_BUCKET_HOUR: UsageBucket.HOUR,
    pb.USAGE_BUCKET_DAY: UsageBucket.DAY,
}
_DIMENSIONS = {
    pb.USAGE_DIMENSION_ACCOUNT: UsageDimension.ACCOUNT,
    pb.USAGE_DIMENSION_ACCESS_KEY: UsageDimension.ACCESS_KEY,
    pb.USAGE_DIMENSION_PROVIDER_KEY: UsageDimension.PROVIDER_KEY,
    pb.USAGE_DIMENSION_PROVIDER: UsageDimension.PROVIDER,
    pb.USAGE_DIMENSION_MODEL: UsageDimension.MODEL,
}
_ROW_FIELDS = {
    UsageDimension.ACCOUNT: "account_id",
    UsageDimension.ACCESS_KEY: "access_key_id",
    UsageDimension.PROVIDER_KEY: "provider_key_id",
    UsageDimension.PROVIDER: "provider_id",
    UsageDimension.MODEL: "model",
}
_FILTERS = (
    ("access_key_id", UsageDimension.ACCESS_KEY),
    ("provider_key_id", UsageDimension.PROVIDER_KEY),
    ("provider_id", UsageDimension.PROVIDER),
    ("model", UsageDimension.MODEL),
)


def _own_account(principal: Principal) -> str | None:
    return None if principal.kind is TokenKind.OPERATOR else principal.account()


def _dollars(nanos: int) -> float:
    return nanos / 1e9


def _row(t: UsageTotals, group_by: tuple[UsageDimension, ...]) -> pb.UsageRow:
    row = pb.UsageRow(
        bucket_start=timestamp(t.bucket_start_us),
        requests=t.requests,
        attempts=t.attempts,
        failovers=t.failovers,
        errors=dict(t.errors),
        input_tokens=t.input_tokens,
        output_tokens=t.output_tokens,
        cached_tokens=t.cached_tokens,
        reasoning_tokens=t.reasoning_tokens,
        cost_usd=_dollars(t.cost_nanos),
        unpriced_attempts=t.unpriced_attempts,
    )
    for dimension, value in zip(group_by, t.group, strict=True):
        setattr(row, _ROW_FIELDS[dimension], value)
    return row


def _attempt(a: UsageAttempt) -> pb.RequestAttempt:
    t = a.tokens
    return pb.RequestAttempt(
        attempt=a.attempt,
        provider_id=a.provider_id,
        upstream_model=a.upstream_model,
        provider_key_id=a.provider_key_id,
        outcome=a.outcome,
        reason=a.reason,
        status=a.status,
        headers_ms=a.headers_ms,
        first_byte_ms=a.first_byte_ms,
        duration_ms=a.duration_ms,
        input_tokens=t.input if t else 0,
        output_tokens=t.output if t else 0,
        cached_tokens=t.cached_input if t else 0,
        reasoning_tokens=t.reasoning if t else 0,
        tokens_known=t is not None,
        cost_usd=_dollars(a.cost_nanos or 0),
        cost_known=a.cost_nanos is not None,
    )


class UsageServicer(Servicer, usage_pb2_grpc.UsageServiceServicer):
    @rpc
    def ListUsage(self, request: pb.ListUsageRequest, principal: Principal) -> pb.ListUsageResponse:
        account = usage.scope(request.account_id, _own_account(principal))
        v = Violations()
        bucket = _BUCKETS.get(request.bucket)
        if bucket is None:
            v.add("bucket", "unknown bucket")
        group_by: list[UsageDimension] = []
        for i, value in enumerate(request.group_by):
            dimension = _DIMENSIONS.get(value)
            if dimension is None:
                v.add(f"group_by[{i}]", "unknown dimension")
            elif dimension in group_by:
                v.add(f"group_by[{i}]", "repeats a dimension")
            else:
                group_by.append(dimension)
        for name, _ in _FILTERS:
            if len(getattr(request, name)) > 255:
                v.add(name, "must be at most 255 characters")
        v.raise_if_any()
        assert bucket is not None
        start, end = usage.time_range(
            request.start_time.ToMicroseconds() if request.HasField("start_time") else None,
            request.end_time.ToMicroseconds() if request.HasField("end_time") else None,
            time.time_ns() // 1000,
            hourly=bucket is UsageBucket.HOUR,
        )
        filters = [(d, getattr(request, name)) for name, d in _FILTERS if getattr(request, name)]
        if account is not None:
            filters.append((UsageDimension.ACCOUNT, account))
        query = UsageQuery(
            start_us=start,
            end_us=end,
            bucket=bucket,
            group_by=tuple(group_by),
            filters=tuple(filters),
        )
        totals = self.store.usage.totals(query)
        return pb.ListUsageResponse(
            rows=[_row(t, query.group_by) for t in totals],
            start_time=timestamp(start - start % UsageBucket.HOUR.value),
            end_time=timestamp(end),
        )

    @rpc
    def GetRequest(
        self, request: pb.GetRequestRequest, principal: Principal
    ) -> pb.GetRequestResponse:
        account = _own_account(principal)
        request_id = require_id(request.request_id, "request_id")
        attempts = self.store.usage.request(request_id, account)
        if not attempts:
            raise NotFound(f"no request {request_id} (records are kept for a limited time)")
        first = attempts[0]
        return pb.GetRequestResponse(
            request=pb.Request(
                request_id=first.request_id,
                request_time=timestamp(first.time_us),
                account_id=first.account_id,
                access_key_id=first.access_key_id,
                configuration_id=first.configuration_id,
                surface=first.surface,
                requested_model=first.requested_model,
                node_id=first.node_id if account is None else "",
                attempts=[_attempt(a) for a in attempts],
            )
        )
