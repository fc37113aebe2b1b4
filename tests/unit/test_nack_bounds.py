"""A NACK stays small whatever it refuses.

An oversized NACK used to exceed the control plane's receive limit: the stream broke,
the rejection was never recorded, and the same snapshot was offered on every reconnect.
"""

from __future__ import annotations

from data_plane.routing.apply import Rejected
from data_plane.shared.validate import Violation
from data_plane.snapshot.decide import nack


def test_a_nack_is_bounded_however_many_and_long_the_violations() -> None:
    huge = Rejected(
        7,
        "x" * 1_000_000,
        tuple(Violation(f"accounts[{i}].id" + "i" * 5000, "d" * 5000) for i in range(100_000)),
    )
    request = nack("n1", huge)
    assert request.ByteSize() < 16 * 1024
    assert request.nack.nonce == "n1"
    assert request.nack.version == 7
    assert len(request.nack.message) == 1024
    assert request.nack.message.endswith("…")
    assert len(request.nack.violations) == 20
    assert all(len(v.field) <= 256 and len(v.description) <= 256 for v in request.nack.violations)
    assert request.nack.violations[0].field.startswith("accounts[0].id")


def test_a_small_nack_is_sent_as_it_is() -> None:
    small = Rejected(3, "1 problem(s); first: x: y", (Violation("x", "y"),))
    request = nack("n2", small)
    assert request.nack.message == small.message
    assert [(v.field, v.description) for v in request.nack.violations] == [("x", "y")]
