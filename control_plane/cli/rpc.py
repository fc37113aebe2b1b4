"""Connection settings, authenticated calls and readable errors for the admin CLI."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from data_plane.shared.addresses import is_loopback

DEFAULT_ADDR = "127.0.0.1:50051"
INSECURE_ENV = "KEYWAY_ALLOW_INSECURE_REMOTE"
TOKEN_FILE_NAME = "admin.token"

_Req = TypeVar("_Req", bound=Message)
_Resp = TypeVar("_Resp", bound=Message)
_Detail = TypeVar("_Detail", bound=Message)


class UsageError(Exception):
    """The command line cannot be acted on; the CLI exits with status 2."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where and as whom to call the control plane."""

    addr: str
    token: str = field(repr=False)  # a credential: keep it out of tracebacks and logs
    timeout: float = 10.0
    tls_ca: Path | None = None
    tls_client_cert: Path | None = None
    tls_client_key: Path | None = None


def resolve_target(args: argparse.Namespace) -> Target:
    """Flags first, then KEYWAY_ADDR / KEYWAY_TOKEN, then the local data directory's token."""
    addr = args.addr or os.environ.get("KEYWAY_ADDR") or DEFAULT_ADDR
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds")
    ca = getattr(args, "tls_ca", None) or os.environ.get("KEYWAY_TLS_CA") or None
    cert = getattr(args, "tls_client_cert", None)
    key = getattr(args, "tls_client_key", None)
    if (cert is None) != (key is None):
        raise UsageError("--tls-client-cert and --tls-client-key go together")
    if cert is not None and ca is None:
        raise UsageError("mTLS needs --tls-ca too")
    insecure_ok = getattr(args, "allow_insecure_remote", False) or (
        os.environ.get(INSECURE_ENV, "") == "1"
    )
    if ca is None and not insecure_ok and not is_loopback(addr):
        # The token is a credential: the same rule the control plane applies to snapshots.
        raise UsageError(
            f"refusing to send the token in plaintext to {addr}: pass --tls-ca PEM (the CA "
            "of the control plane's certificate), or --allow-insecure-remote (or "
            f"{INSECURE_ENV}=1) if a trusted network layer already encrypts the traffic"
        )
    return Target(
        addr=addr,
        token=_resolve_token(args),
        timeout=args.timeout,
        tls_ca=Path(ca) if ca else None,
        tls_client_cert=Path(cert) if cert else None,
        tls_client_key=Path(key) if key else None,
    )


def _resolve_token(args: argparse.Namespace) -> str:
    if args.token:
        return str(args.token)
    if args.token_file:
        return _read_token(Path(args.token_file))
    if token := os.environ.get("KEYWAY_TOKEN", "").strip():
        return token
    data_dir = os.environ.get("KEYWAY_DATA_DIR")
    candidates = [Path(data_dir) / TOKEN_FILE_NAME] if data_dir else []
    candidates.append(Path(".keyway") / TOKEN_FILE_NAME)
    for candidate in candidates:
        if candidate.is_file():
            return _read_token(candidate)
    raise UsageError(
        "no admin token: pass --token TOKEN or --token-file PATH, set KEYWAY_TOKEN, "
        f"or run from a directory whose .keyway/{TOKEN_FILE_NAME} exists "
        f"(or whose KEYWAY_DATA_DIR holds {TOKEN_FILE_NAME})"
    )


def _read_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as err:
        raise UsageError(f"cannot read token file {path}: {err.strerror}") from None
    if not token:
        raise UsageError(f"token file {path} is empty")
    return token


class Session:
    """One channel plus the metadata and deadline every admin call carries."""

    def __init__(self, channel: grpc.Channel, target: Target) -> None:
        self.channel = channel
        self._metadata = (("authorization", f"Bearer {target.token}"),)
        self._timeout = target.timeout

    def call(self, method: grpc.UnaryUnaryMultiCallable[_Req, _Resp], request: _Req) -> _Resp:
        return method(request, timeout=self._timeout, metadata=self._metadata)


@contextmanager
def open_session(target: Target) -> Iterator[Session]:
    with _channel(target) as channel:
        yield Session(channel, target)


def _channel(target: Target) -> grpc.Channel:
    if target.tls_ca is None:
        return grpc.insecure_channel(target.addr)
    try:
        credentials = grpc.ssl_channel_credentials(
            root_certificates=target.tls_ca.read_bytes(),
            private_key=target.tls_client_key.read_bytes() if target.tls_client_key else None,
            certificate_chain=(
                target.tls_client_cert.read_bytes() if target.tls_client_cert else None
            ),
        )
    except OSError as error:
        raise UsageError(f"cannot read a TLS file: {error.filename}: {error.strerror}") from None
    return grpc.secure_channel(target.addr, credentials)


def describe_error(err: grpc.RpcError, target: Target) -> str:
    """A one-line summary plus one indented line per field or precondition violation."""
    code = err.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        return f"keyway: error: cannot reach the control plane at {target.addr} (is it running?)"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return (
            f"keyway: error: DEADLINE_EXCEEDED: no answer from the control plane at {target.addr} "
            f"within {target.timeout:g}s (raise --timeout?)"
        )
    status = _rich_status(err)
    if status is None:
        status = status_pb2.Status(message=err.details() or "")
    reason = next((info.reason for info in _unpack(status, error_details_pb2.ErrorInfo)), "")
    violations = [
        f"{violation.field}: {violation.description}"
        for bad_request in _unpack(status, error_details_pb2.BadRequest)
        for violation in bad_request.field_violations
    ]
    # A lone violation often is the message itself; don't print it twice.
    lines = [f"  {text}" for text in violations if text != status.message]
    for failure in _unpack(status, error_details_pb2.PreconditionFailure):
        for violation in failure.violations:
            # The subject (e.g. the configuration that blocks a delete) is the news; type
            # and description often just repeat the reason and the message.
            parts = [violation.subject]
            if violation.type != reason:
                parts.append(violation.type)
            if violation.description != status.message:
                parts.append(violation.description)
            if any(parts):
                lines.append("  " + ": ".join(part for part in parts if part))
    message = status.message
    name = code.name if code is not None else "UNKNOWN"
    qualifier = f" ({reason})" if reason and reason != name else ""
    head = f"keyway: error: {name}{qualifier}: {message}"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        lines.append("  check the admin token (--token, --token-file or KEYWAY_TOKEN)")
    return "\n".join([head, *lines])


def _unpack(status: status_pb2.Status, cls: type[_Detail]) -> list[_Detail]:
    found = []
    for detail in status.details:
        if detail.Is(cls.DESCRIPTOR):
            message = cls()
            detail.Unpack(message)
            found.append(message)
    return found


def _rich_status(err: grpc.RpcError) -> status_pb2.Status | None:
    if not isinstance(err, grpc.Call):
        return None
    try:
        status: status_pb2.Status | None = rpc_status.from_call(err)
    except ValueError:
        # The trailer disagrees with the call's own code/message: trust the call.
        return None
    return status
