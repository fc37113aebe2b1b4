"""The one place where domain errors become gRPC statuses (with rich details).

An error travels in trailing metadata, which clients cap (8 KiB by default): past it
the caller gets a transport error instead of the answer. Messages can quote what the
caller sent (an unknown id, a bad provider), so every text is cut to a byte budget and
the detail lists are capped, keeping the whole status well below the cap.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from control_plane.domain import errors
from control_plane.domain.quotas import QUOTAS

DOMAIN = "keyway.dev"

_MESSAGE_BYTES = 300
_DETAIL_BYTES = 160
_MAX_DETAILS = 10


def _cut(text: str, limit: int) -> str:
    """`text` in at most `limit` UTF-8 bytes, cut on a character boundary."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


_CODES: dict[type[errors.DomainError], grpc.StatusCode] = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.Aborted: grpc.StatusCode.ABORTED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_status(error: errors.DomainError) -> tuple[grpc.StatusCode, status_pb2.Status]:
    code = next(
        (mapped for cls, mapped in _CODES.items() if isinstance(error, cls)),
        grpc.StatusCode.INTERNAL,
    )
    status = status_pb2.Status(code=code.value[0], message=_cut(error.message, _MESSAGE_BYTES))
    info = error_details_pb2.ErrorInfo(reason=error.reason, domain=DOMAIN)
    if isinstance(error, errors.ResourceExhausted) and error.quota in QUOTAS:
        info.metadata.update(
            quota=error.quota, limit=str(error.limit), flag=QUOTAS[error.quota].flag
        )
    status.details.append(_pack(info))
    if isinstance(error, errors.ResourceExhausted):
        failure = error_details_pb2.QuotaFailure()
        failure.violations.add(
            subject=_cut(error.subject, _DETAIL_BYTES),
            description=_cut(status.message, _DETAIL_BYTES),
        )
        status.details.append(_pack(failure))
    if isinstance(error, errors.InvalidArgument) and error.violations:
        bad = error_details_pb2.BadRequest()
        for v in error.violations[:_MAX_DETAILS]:
            bad.field_violations.add(
                field=_cut(v.field, _DETAIL_BYTES), description=_cut(v.description, _DETAIL_BYTES)
            )
        status.details.append(_pack(bad))
    if isinstance(error, errors.FailedPrecondition) and error.subjects:
        failure = error_details_pb2.PreconditionFailure()
        for subject in error.subjects[:_MAX_DETAILS]:
            failure.violations.add(
                type=error.reason,
                subject=_cut(subject, _DETAIL_BYTES),
                description=_cut(status.message, _DETAIL_BYTES),
            )
        status.details.append(_pack(failure))
    return code, status


def internal_status(request_id: str) -> tuple[grpc.StatusCode, status_pb2.Status]:
    message = f"internal error (request id {request_id}); see the control plane log"
    status = status_pb2.Status(code=code_pb2.INTERNAL, message=message)
    status.details.append(_pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)))
    return grpc.StatusCode.INTERNAL, status


def trailing_metadata(status: status_pb2.Status) -> tuple[tuple[str, bytes], ...]:
    return (("grpc-status-details-bin", status.SerializeToString()),)
