"""Deciding whether a received snapshot may replace the one being served. Pure."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from keyway.v1 import snapshot_pb2 as spb

from .table import RoutingTable, build
from .validate import Violation, validate


@dataclass(frozen=True, slots=True)
class Applied:
    table: RoutingTable


@dataclass(frozen=True, slots=True)
class Rejected:
    version: int
    message: str
    violations: tuple[Violation, ...] = ()


def apply(version: int, sha256: str, payload: bytes) -> Applied | Rejected:
    """Verify the hash over the exact bytes, parse, validate, build.

    Any failure leaves the caller serving what it served before.
    """
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        return Rejected(version, f"content hash mismatch (got {actual[:12]}…)")
    snapshot = spb.Snapshot()
    try:
        snapshot.ParseFromString(payload)
    except DecodeError:
        return Rejected(version, "snapshot bytes do not parse")
    if snapshot.version != version:
        return Rejected(
            version, f"envelope says version {version}, snapshot says {snapshot.version}"
        )
    violations = validate(snapshot)
    if violations:
        first = violations[0]
        summary = f"{len(violations)} problem(s); first: {first.field}: {first.description}"
        return Rejected(version, summary, tuple(violations))
    return Applied(build(snapshot, sha256))
