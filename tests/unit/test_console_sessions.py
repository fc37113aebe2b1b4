"""Console sessions with a hand-turned clock: expiry, the cap on live sessions, CSRF
comparison, and a repr without the token."""

from __future__ import annotations

import pytest

from control_plane.console import sessions
from control_plane.console.sessions import Sessions


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_session_lives_until_its_expiry_and_not_a_second_longer() -> None:
    clock = Clock()
    book = Sessions(clock, ttl=60)
    opened = book.open("kwadm_secret", "admin", "acct_1")
    clock.now += 59.9
    assert book.find(opened.id) == opened
    clock.now += 0.1
    assert book.find(opened.id) is None
    assert book.find("") is None


def test_ids_and_csrf_values_are_fresh_and_compared_whole() -> None:
    book = Sessions(Clock())
    one, two = book.open("kwadm_a", "admin", "acct_1"), book.open("kwadm_a", "admin", "acct_1")
    assert one.id != two.id
    assert one.csrf != two.csrf
    assert one.csrf_matches(one.csrf)
    assert not one.csrf_matches(two.csrf)
    assert not one.csrf_matches(one.csrf[:-1])
    assert not one.csrf_matches(None)


def test_closing_ends_a_session_and_the_oldest_goes_past_the_cap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sessions, "MAX_SESSIONS", 2)
    book = Sessions(Clock())
    first, second = book.open("t1", "admin", None), book.open("t2", "admin", None)
    third = book.open("t3", "operator", None)
    assert book.find(first.id) is None
    assert book.find(second.id) == second
    book.close(second.id)
    assert book.find(second.id) is None
    assert book.find(third.id) == third


def test_the_repr_holds_no_token_id_or_csrf_value() -> None:
    opened = Sessions(Clock()).open("kwadm_topsecret", "admin", "acct_1")
    text = repr(opened)
    for secret in ("kwadm_topsecret", opened.id, opened.csrf):
        assert secret not in text
