"""Deciding whether a received snapshot may replace the one being served. Pure.

Most snapshots differ from the one before in a single account. The payload is split
at its top level into the header and one byte string per account (protobuf puts
each `accounts` entry on the wire as its own length-delimited field), so an account
whose bytes are unchanged reuses what was validated and built from them last time;
only changed accounts are parsed, validated and built. The outcome is exactly that
of validating and building the whole snapshot.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.protobuf.message import DecodeError
from keyway.v1 import snapshot_pb2 as spb

from data_plane.shared.validate import (
    SCHEMA_VERSION,
    CrossAccountCheck,
    Violation,
    validate_account,
    validate_header,
)

from .table import AccountPart, BuiltIn, Parts, RoutingTable, assemble, build_account

_ACCOUNTS_FIELD = spb.Snapshot.DESCRIPTOR.fields_by_name["accounts"].number
_LENGTH_DELIMITED = 2


@dataclass(frozen=True, slots=True)
class Applied:
    table: RoutingTable


@dataclass(frozen=True, slots=True)
class Rejected:
    version: int
    message: str
    violations: tuple[Violation, ...] = ()


class _Malformed(Exception):
    pass


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise _Malformed
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _split(payload: bytes) -> tuple[bytes, list[bytes]]:
    """(every top-level field but `accounts`, re-joined; each account's bytes)."""
    header: list[bytes] = []
    accounts: list[bytes] = []
    at = 0
    while at < len(payload):
        start = at
        tag, at = _varint(payload, at)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == 0:
            _, at = _varint(payload, at)
        elif wire_type == 1:
            at += 8
        elif wire_type == 5:
            at += 4
        elif wire_type == _LENGTH_DELIMITED:
            length, at = _varint(payload, at)
            if number == _ACCOUNTS_FIELD:
                if at + length > len(payload):
                    raise _Malformed
                accounts.append(payload[at : at + length])
                at += length
                continue
            at += length
        else:
            raise _Malformed  # groups and reserved wire types are not in this schema
        if at > len(payload):
            raise _Malformed
        header.append(payload[start:at])
    return b"".join(header), accounts


def apply(
    version: int, sha256: str, payload: bytes, previous: RoutingTable | None = None
) -> Applied | Rejected:
    """Verify the hash over the exact bytes, parse, validate, build.

    `previous` is the table being served: accounts whose bytes it was built from are
    reused. Any failure leaves the caller serving what it served before.
    """
    actual = hashlib.sha256(payload).hexdigest()
    if actual != sha256:
        return Rejected(version, f"content hash mismatch (got {actual[:12]}…)")
    try:
        header_bytes, account_bytes = _split(payload)
        header = spb.Snapshot.FromString(header_bytes)
    except (_Malformed, DecodeError):
        return Rejected(version, "snapshot bytes do not parse")
    if header.version != version:
        return Rejected(version, f"envelope says version {version}, snapshot says {header.version}")
    problems, built_in_ids = validate_header(header)
    if header.schema_version != SCHEMA_VERSION:
        return _rejected(version, problems)  # nothing else can be read with confidence

    built_in_bytes = b"".join(p.SerializeToString(deterministic=True) for p in header.providers)
    reusable = previous.parts.accounts if previous is not None else {}
    if previous is None or previous.parts.built_in != built_in_bytes:
        reusable = {}
    # Built as they are checked, so each parsed account is dropped at once (peak memory
    # stays one table, not a table plus every parsed account); thrown away on a problem.
    built_in = BuiltIn(header.providers) if not problems else None
    across = CrossAccountCheck()
    parts: list[AccountPart] = []
    kept: dict[bytes, AccountPart] = {}
    for i, data in enumerate(account_bytes):
        digest = _digest(data)
        part = reusable.get(digest)
        if part is not None:
            problems.extend(across.add(i, part.account.id, part.hashes, part.key_ids))
        else:
            try:
                account = spb.SnapshotAccount.FromString(data)
            except DecodeError:
                return Rejected(version, "snapshot bytes do not parse")
            hashes = [a.token_sha256 for a in account.access_keys]
            problems.extend(across.add(i, account.id, hashes, [a.id for a in account.access_keys]))
            found = validate_account(account, built_in_ids, f"accounts[{i}]")
            problems.extend(found)
            if problems or built_in is None:
                continue
            part = build_account(account, built_in)
        if not problems:
            parts.append(part)
            kept[digest] = part
    if problems:
        return _rejected(version, problems)
    return Applied(assemble(version, sha256, parts, Parts(built_in_bytes, kept)))


def _digest(account: bytes) -> bytes:
    """What identifies an account's bytes between snapshots (a 128-bit BLAKE2b: keeping
    the bytes themselves would hold a second copy of the snapshot in memory)."""
    return hashlib.blake2b(account, digest_size=16).digest()


def _rejected(version: int, violations: list[Violation]) -> Rejected:
    first = violations[0]
    summary = f"{len(violations)} problem(s); first: {first.field}: {first.description}"
    return Rejected(version, summary, tuple(violations))
