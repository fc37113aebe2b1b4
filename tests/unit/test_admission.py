"""Per-tenant concurrency and rate caps, driven with a fake clock."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.routing.admission import Admission, AdmissionLimits, Refusal, Ticket


def admitted(result: Ticket | Refusal) -> Ticket:
    assert isinstance(result, Ticket), result
    return result


def refused(result: Ticket | Refusal) -> Refusal:
    assert isinstance(result, Refusal), result
    return result


def test_per_access_key_cap() -> None:
    gate = Admission(AdmissionLimits(per_access_key=2, per_account=10))
    first = admitted(gate.admit("ak_1", "acct", 0.0))
    admitted(gate.admit("ak_1", "acct", 0.0))
    refusal = refused(gate.admit("ak_1", "acct", 0.0))
    assert refusal.code == "concurrency_limit"
    assert "access key" in refusal.message
    assert "limit 2" in refusal.message
    assert refusal.retry_after == 1.0
    admitted(gate.admit("ak_2", "acct", 0.0))  # another key of the account is not held up
    gate.release(first)
    admitted(gate.admit("ak_1", "acct", 0.0))
    assert gate.in_flight("ak_1") == 2


def test_per_account_cap_counts_every_key_of_the_account() -> None:
    gate = Admission(AdmissionLimits(per_access_key=10, per_account=3))
    tickets = [admitted(gate.admit(f"ak_{i}", "acct_b", 0.0)) for i in range(3)]
    refusal = refused(gate.admit("ak_9", "acct_b", 0.0))
    assert refusal.code == "concurrency_limit"
    assert "account" in refusal.message
    admitted(gate.admit("ak_a", "acct_a", 0.0))  # other tenants are unaffected
    gate.release(tickets[0])
    admitted(gate.admit("ak_9", "acct_b", 0.0))


def test_the_configurations_concurrency_only_lowers_the_cap() -> None:
    gate = Admission(AdmissionLimits(per_access_key=3, per_account=100))
    admitted(gate.admit("ak", "acct", 0.0, concurrency=1))
    refused(gate.admit("ak", "acct", 0.0, concurrency=1))
    admitted(gate.admit("ak", "acct", 0.0, concurrency=50))  # capped at 3 by the proxy
    admitted(gate.admit("ak", "acct", 0.0, concurrency=50))
    refused(gate.admit("ak", "acct", 0.0, concurrency=50))


def test_requests_per_minute_bucket_bursts_then_refills() -> None:
    gate = Admission()
    for _ in range(60):
        gate.release(admitted(gate.admit("ak", "acct", 100.0, requests_per_minute=60)))
    refusal = refused(gate.admit("ak", "acct", 100.0, requests_per_minute=60))
    assert refusal.code == "rate_limit_exceeded"
    assert "60 requests per minute" in refusal.message
    assert refusal.retry_after == pytest.approx(1.0)
    refused(gate.admit("ak", "acct", 100.5, requests_per_minute=60))
    gate.release(admitted(gate.admit("ak", "acct", 101.0, requests_per_minute=60)))
    refused(gate.admit("ak", "acct", 101.0, requests_per_minute=60))


def test_a_refused_request_costs_no_token_and_no_slot() -> None:
    gate = Admission(AdmissionLimits(per_access_key=1, per_account=10))
    held = admitted(gate.admit("ak", "acct", 0.0, requests_per_minute=2))
    refused(gate.admit("ak", "acct", 0.0, requests_per_minute=2))  # concurrency: no token used
    gate.release(held)
    gate.release(admitted(gate.admit("ak", "acct", 0.0, requests_per_minute=2)))
    refused(gate.admit("ak", "acct", 0.0, requests_per_minute=2))
    assert gate.in_flight("ak") == 0


def test_a_changed_rate_applies_at_once() -> None:
    gate = Admission()
    for _ in range(3):
        gate.release(admitted(gate.admit("ak", "acct", 0.0, requests_per_minute=3)))
    refused(gate.admit("ak", "acct", 0.0, requests_per_minute=3))
    # Raised to 600/min: 10 a second refill, so a tenth of a second later one more fits.
    gate.release(admitted(gate.admit("ak", "acct", 0.1, requests_per_minute=600)))


def test_idle_buckets_are_swept() -> None:
    gate = Admission()
    for i in range(12_000):
        gate.release(admitted(gate.admit(f"ak_{i}", "acct", 0.0, requests_per_minute=60)))
    # A minute later every bucket is full again, so the next sweep drops them all.
    for i in range(12_000, 24_000):
        gate.release(admitted(gate.admit(f"ak_{i}", "acct", 60.0, requests_per_minute=60)))
    assert len(gate._buckets) < 20_000


def test_caps_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        AdmissionLimits(per_access_key=0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["admit", "release"]), st.integers(0, 3), st.integers(0, 1)),
        max_size=60,
    )
)
def test_counts_never_exceed_the_caps_and_return_to_zero(
    steps: list[tuple[str, int, int]],
) -> None:
    limits = AdmissionLimits(per_access_key=2, per_account=3)
    gate = Admission(limits)
    held: list[Ticket] = []
    for action, key, account in steps:
        if action == "admit":
            result = gate.admit(f"ak_{key}", f"acct_{account}", 0.0)
            if isinstance(result, Ticket):
                held.append(result)
        elif held:
            gate.release(held.pop(0))
        for k in range(4):
            assert gate.in_flight(f"ak_{k}") <= limits.per_access_key
        for a in range(2):
            assert sum(1 for t in held if t.account_id == f"acct_{a}") <= limits.per_account
    for ticket in held:
        gate.release(ticket)
    assert all(gate.in_flight(f"ak_{k}") == 0 for k in range(4))
    assert gate._keys == {}
    assert gate._accounts == {}
