"""The snapshot client's decision for each message, without a stream or a clock."""

from __future__ import annotations

import hashlib

from keyway.v1 import discovery_pb2 as pb
from keyway.v1 import snapshot_pb2 as spb

from data_plane.snapshot.decide import NACK_MESSAGE_MAX, Confirm, Refuse, Swap, decide
from tests.unit.snapshots import access_key, account, key, secret, snapshot, table

TOKEN = "kwak_" + "a" * 38


def _update(
    snap: spb.Snapshot, nonce: str = "n1", sha256: str | None = None
) -> pb.StreamSnapshotsResponse:
    payload = snap.SerializeToString(deterministic=True)
    update = pb.SnapshotUpdate(
        version=snap.version, hash=sha256 or hashlib.sha256(payload).hexdigest(), snapshot=payload
    )
    update.generate_time.FromMicroseconds(1_700_000_000_250_000)
    return pb.StreamSnapshotsResponse(nonce=nonce, update=update)


def _good(version: int = 3) -> spb.Snapshot:
    acct = account("acct_1", keys=[key("pk_1", "openai")], access_keys=[access_key("ak_1", TOKEN)])
    return snapshot(acct, version=version)


def test_current_confirms_and_replies_nothing() -> None:
    current = pb.StreamSnapshotsResponse(nonce="n0", current=pb.Current(version=3, hash="h"))
    assert decide(current, table(_good())) == Confirm()
    assert decide(current, None).reply is None


def test_a_valid_update_is_swapped_in_and_acknowledged_by_nonce() -> None:
    response = _update(_good())
    decision = decide(response, None)
    assert isinstance(decision, Swap)
    assert decision.table == table(_good())
    assert (decision.version, decision.sha256) == (3, response.update.hash)
    assert decision.payload == response.update.snapshot
    assert decision.generated_at == 1_700_000_000.25
    assert decision.reply == pb.StreamSnapshotsRequest(
        ack=pb.Ack(nonce="n1", version=3, hash=response.update.hash)
    )
    # The payload holds provider key values: it stays out of the repr.
    assert secret("pk_1") not in repr(decision)


def test_an_update_on_top_of_the_served_table_reuses_unchanged_accounts() -> None:
    served = decide(_update(_good(3)), None)
    assert isinstance(served, Swap)
    again = decide(_update(_good(4)), served.table)
    assert isinstance(again, Swap)
    assert again.table.accounts["acct_1"] is served.table.accounts["acct_1"]


def test_an_invalid_update_is_refused_with_a_nack_naming_the_field() -> None:
    bad = _good()
    bad.accounts[0].access_keys[0].token_sha256 = "NOT-A-HASH"
    decision = decide(_update(bad, nonce="n7"), None)
    assert isinstance(decision, Refuse)
    nack = decision.reply.nack
    assert (nack.nonce, nack.version) == ("n7", 3)
    assert [v.field for v in nack.violations] == ["accounts[0].access_keys[0].token_sha256"]
    assert decision.reason.startswith("snapshot 3 rejected: 1 problem(s); first: accounts[0]")
    assert secret("pk_1") not in decision.reason + str(decision.reply)


def test_a_tampered_update_is_refused_and_the_reason_is_bounded() -> None:
    decision = decide(_update(_good(), sha256="0" * 64), None)
    assert isinstance(decision, Refuse)
    assert "content hash mismatch" in decision.reply.nack.message
    assert len(decision.reason) <= NACK_MESSAGE_MAX
