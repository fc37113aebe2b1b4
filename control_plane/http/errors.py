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

import grpc
from google.protobuf import json_format
from google.rpc import status_pb2

_HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


def code_of(status: status_pb2.Status) -> grpc.StatusCode:
    return _BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)


def http_status(code: grpc.StatusCode) -> int:
    return _HTTP_STATUS.get(code, 500)


def error_body(status: status_pb2.Status, http: int | None = None) -> dict[str, Any]:
    """The Google JSON error of a `google.rpc.Status` (`http` overrides the mapped status)."""
    code = code_of(status)
    return {
        "error": {
            "code": http_status(code) if http is None else http,
            "message": status.message,
            "status": code.name,
            "details": [json_format.MessageToDict(detail) for detail in status.details],
        }
    }
