"""`--control-plane a:50051,b:50051`: parsing, and moving along the list; which
worker of `--workers N` a process is."""

from __future__ import annotations

from pathlib import Path

import pytest

from data_plane.shared.startup import StartupError
from data_plane.snapshot.targets import ControlPlanes, parse_targets
from data_plane.workers import Worker, this_worker


def test_one_address_or_several() -> None:
    assert parse_targets("127.0.0.1:50051") == ("127.0.0.1:50051",)
    assert parse_targets("a:1, b:2 ,dns:///cp.example:3") == ("a:1", "b:2", "dns:///cp.example:3")
    assert parse_targets("[::1]:50051") == ("[::1]:50051",)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "no empty entry"),
        ("a:1,,b:2", "no empty entry"),
        ("a:1,", "no empty entry"),
        ("a", "'a' is not HOST:PORT"),
        ("a:port", "is not HOST:PORT"),
        (":50051", "is not HOST:PORT"),
        ("a:1,a:1", "listed twice"),
    ],
)
def test_bad_lists_are_refused_naming_the_flag(text: str, says: str) -> None:
    with pytest.raises(ValueError, match="--control-plane") as refused:
        parse_targets(text)
    assert says in str(refused.value)


def test_proxies_start_at_a_random_place_and_go_round_the_list() -> None:
    targets = ("a:1", "b:2", "c:3")
    assert ControlPlanes(targets, None, lambda: 0.0).current == "a:1"
    assert ControlPlanes(targets, None, lambda: 0.5).current == "b:2"
    planes = ControlPlanes(targets, None, lambda: 0.99999)
    assert planes.current == "c:3"
    assert [planes.advance() for _ in range(4)] == ["a:1", "b:2", "c:3", "a:1"]
    alone = ControlPlanes(("a:1",), None, lambda: 0.7)
    assert (alone.current, alone.advance()) == ("a:1", "a:1")


def test_a_worker_knows_its_socket_and_index_from_the_environment() -> None:
    assert this_worker({}) is None
    worker = this_worker({"KEYWAY_WORKER": "7:2"})
    assert worker == Worker(7, 2)
    assert worker.node_id("edge-1") == "edge-1/w2"
    assert worker.cache_dir(Path("/var/cache/keyway")) == Path("/var/cache/keyway/w2")
    assert worker.cache_dir(None) is None
    with pytest.raises(StartupError, match="KEYWAY_WORKER must be FD:INDEX"):
        this_worker({"KEYWAY_WORKER": "seven"})
