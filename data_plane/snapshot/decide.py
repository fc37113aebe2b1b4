"""What the snapshot client does with each message of its stream: decided here. Pure.

In the manner of h11, `decide` turns one message from the control plane and the table
being served into a decision, with no I/O: `Confirm` ("current": the served snapshot
is the latest), `Swap` (a valid update: the table to serve and the ACK to send) or
`Refuse` (an invalid update: why, and the NACK to send, bounded). `SnapshotClient`
carries the decision out (swaps the table, writes the cache, updates metrics, sends
the reply); the protocol model in the tests drives this same function.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keyway.v1 import discovery_pb2 as pb

from data_plane.routing.apply import Rejected, apply
from data_plane.routing.table import RoutingTable

NACK_MESSAGE_MAX = 1024
_NACK_VIOLATIONS_MAX = 20
_NACK_DESCRIPTION_MAX = 256


@dataclass(frozen=True, slots=True)
class Confirm:
    """The control plane's latest is what this proxy serves: nothing to apply or reply."""

    reply: None = None


@dataclass(frozen=True, slots=True)
class Swap:
    """Serve `table` from now on, persist the update, and send `reply` (the ACK)."""

    table: RoutingTable
    version: int
    sha256: str
    payload: bytes = field(repr=False)
    """The update's exact bytes, for the cache (they hold provider key values)."""
    generated_at: float
    """Wall-clock seconds when the control plane compiled it (0 when not said)."""
    reply: pb.StreamSnapshotsRequest


@dataclass(frozen=True, slots=True)
class Refuse:
    """Keep serving what is served, and send `reply` (the NACK)."""

    reason: str
    """For the log and `/readyz`: ids, sizes and field paths only, at most 1 KiB."""
    reply: pb.StreamSnapshotsRequest


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def nack(nonce: str, rejected: Rejected) -> pb.StreamSnapshotsRequest:
    """The refusal of a snapshot, bounded: however broken the snapshot (a million field
    violations, huge ids), the NACK stays far below what the control plane reads."""
    return pb.StreamSnapshotsRequest(
        nack=pb.Nack(
            nonce=nonce,
            version=rejected.version,
            message=_cut(rejected.message, NACK_MESSAGE_MAX),
            violations=[
                pb.SnapshotViolation(
                    field=_cut(v.field, _NACK_DESCRIPTION_MAX),
                    description=_cut(v.description, _NACK_DESCRIPTION_MAX),
                )
                for v in rejected.violations[:_NACK_VIOLATIONS_MAX]
            ],
        )
    )


def decide(
    response: pb.StreamSnapshotsResponse, served: RoutingTable | None
) -> Confirm | Swap | Refuse:
    """`served` is the table being served: accounts whose bytes it was built from are
    reused (see `routing.apply`). Runs off the event loop: an update is hashed,
    parsed, validated and built here."""
    if response.WhichOneof("message") != "update":
        return Confirm()
    update = response.update
    result = apply(update.version, update.hash, update.snapshot, served)
    if isinstance(result, Rejected):
        reason = f"snapshot {update.version} rejected: {result.message}"
        return Refuse(reason[:NACK_MESSAGE_MAX], nack(response.nonce, result))
    ack = pb.Ack(nonce=response.nonce, version=update.version, hash=update.hash)
    return Swap(
        result.table,
        update.version,
        update.hash,
        update.snapshot,
        update.generate_time.ToMicroseconds() / 1e6,
        pb.StreamSnapshotsRequest(ack=ack),
    )
