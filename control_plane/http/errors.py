"""The one place where a failed admin call becomes an HTTP response.

The body is the Google JSON error, `{"error": {"code", "message", "status", "details"}}`:
`code` is the HTTP status, `status` the gRPC code's name, and `details` the very
`google.rpc` messages (ErrorInfo, BadRequest, PreconditionFailure, QuotaFailure) the gRPC
call carries in `grpc-status-details-bin`, each with its `@type`. Statuses follow the
standard gRPC→HTTP mapping, except FAILED_PRECONDITION: every one the admin API raises is a
conflict with the state of other resources (a key still referenced, an account not empty,
the last operator credential), so it is 409 like ABORTED, not 400.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format
from google.rpc import code_pb2, status_pb2

_HTTP_STATUS: dict[int, int] = {
    code_pb2.OK: 200,
    code_pb2.CANCELLED: 499,
    code_pb2.UNKNOWN: 500,
    code_pb2.INVALID_ARGUMENT: 400,
    code_pb2.DEADLINE_EXCEEDED: 504,
    code_pb2.NOT_FOUND: 404,
    code_pb2.ALREADY_EXISTS: 409,
    code_pb2.PERMISSION_DENIED: 403,
    code_pb2.UNAUTHENTICATED: 401,
    code_pb2.RESOURCE_EXHAUSTED: 429,
    code_pb2.FAILED_PRECONDITION: 409,
    code_pb2.ABORTED: 409,
    code_pb2.OUT_OF_RANGE: 400,
    code_pb2.UNIMPLEMENTED: 501,
    code_pb2.INTERNAL: 500,
    code_pb2.UNAVAILABLE: 503,
    code_pb2.DATA_LOSS: 500,
}


def http_status(code: int) -> int:
    """The HTTP status of a `google.rpc.Code` (500 for a number it does not know)."""
    return _HTTP_STATUS.get(code, 500)


def code_name(code: int) -> str:
    return str(code_pb2.Code.Name(code)) if code in _HTTP_STATUS else "UNKNOWN"


def error_body(status: status_pb2.Status, http: int | None = None) -> dict[str, Any]:
    """The Google JSON error of a `google.rpc.Status` (`http` overrides the mapped status)."""
    return {
        "error": {
            "code": http_status(status.code) if http is None else http,
            "message": status.message,
            "status": code_name(status.code),
            "details": [json_format.MessageToDict(detail) for detail in status.details],
        }
    }
