"""Secret files on disk: the shared writer and reader, and every place that uses them.

Another local user must not be able to read a token or key, swap one in, or redirect a
write through a planted symlink. Tests run as root here, so "another user" is simulated
by chown-ing to an unused uid.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from control_plane.server import ControlPlane, Settings
from data_plane.shared.private_files import (
    UnsafePathError,
    ensure_private_dir,
    locked,
    open_private,
    read_private,
    write_private,
)
from data_plane.shared.startup import StartupError
from data_plane.snapshot.cache import KEY_ENV, SnapshotCache

OTHER_UID = os.geteuid() + 4242


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def attacker_file(tmp_path: Path) -> Path:
    """A world-readable file the attacker owns and reads afterwards."""
    victim = tmp_path / "attacker-reads-this"
    victim.write_text("")
    victim.chmod(0o666)
    return victim


# -- the shared helpers ----------------------------------------------------------------------


def test_write_private_is_0600_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    write_private(target, b"first")
    write_private(target, b"second")
    assert target.read_bytes() == b"second"
    assert mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_write_private_replaces_a_planted_symlink_instead_of_following_it(
    tmp_path: Path,
) -> None:
    victim = attacker_file(tmp_path)
    target = tmp_path / "secret"
    target.symlink_to(victim)
    write_private(target, b"token")
    assert victim.read_text() == ""
    assert not target.is_symlink()
    assert target.read_bytes() == b"token"
    assert mode(target) == 0o600


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o600 | stat.S_ISUID])
def test_read_private_refuses_files_others_can_touch(tmp_path: Path, loose: int) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"k")
    path.chmod(loose)
    if loose & 0o077:
        with pytest.raises(UnsafePathError, match="accessible to group or others"):
            read_private(path)
    else:
        assert read_private(path) == b"k"


def test_read_private_refuses_symlinks_other_owners_and_non_files(tmp_path: Path) -> None:
    real = tmp_path / "real"
    write_private(real, b"k")
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(UnsafePathError, match="symlink"):
        read_private(link)
    foreign = tmp_path / "foreign"
    write_private(foreign, b"k")
    os.chown(foreign, OTHER_UID, -1)
    with pytest.raises(UnsafePathError, match=f"owned by uid {OTHER_UID}"):
        read_private(foreign)
    with pytest.raises(UnsafePathError, match="not a regular file"):
        read_private(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_private(tmp_path / "missing")


def test_ensure_private_dir_creates_0700_and_refuses_shared_directories(tmp_path: Path) -> None:
    created = ensure_private_dir(tmp_path / "a" / "b")
    assert mode(created) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(UnsafePathError, match=r"writable by group or others.*chmod 700"):
        ensure_private_dir(shared)
    foreign = tmp_path / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, OTHER_UID, -1)
    with pytest.raises(UnsafePathError, match="owned by uid"):
        ensure_private_dir(foreign)
    readable = tmp_path / "readable"
    readable.mkdir(mode=0o755)
    readable.chmod(0o755)
    assert ensure_private_dir(readable) == readable  # readable is fine: the files are 0600


def test_open_private_tightens_our_own_loose_file_and_refuses_others(tmp_path: Path) -> None:
    ours = tmp_path / "db"
    ours.write_bytes(b"")
    ours.chmod(0o644)
    os.close(open_private(ours))
    assert mode(ours) == 0o600
    theirs = tmp_path / "theirs"
    theirs.write_bytes(b"")
    os.chown(theirs, OTHER_UID, -1)
    with pytest.raises(UnsafePathError, match="owned by uid"):
        open_private(theirs)
    link = tmp_path / "lock"
    link.symlink_to(attacker_file(tmp_path))
    with pytest.raises(UnsafePathError, match="symlink"), locked(link):
        pass


# -- the control plane's data directory ------------------------------------------------------


def settings(data_dir: Path) -> Settings:
    return Settings(listen="127.0.0.1:0", data_dir=data_dir)


def start_and_close(data_dir: Path) -> None:
    """Runs the control plane's start-up (data directory, database, keys, tokens) only."""

    async def construct() -> ControlPlane:
        return ControlPlane(settings(data_dir))  # its gRPC server wants a running loop

    asyncio.run(construct()).store.close()


def test_token_files_never_land_in_a_planted_symlink(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    victim = attacker_file(tmp_path)
    for name in ("operator.token", "admin.token", "data-plane.token"):
        (data_dir / f"{name}.tmp").symlink_to(victim)
    start_and_close(data_dir)
    assert victim.read_text() == ""
    for name in ("operator.token", "admin.token", "data-plane.token"):
        assert mode(data_dir / name) == 0o600
        assert (data_dir / name).read_text().startswith("kw")


def test_the_database_and_its_wal_files_are_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    start_and_close(data_dir)
    assert mode(data_dir) == 0o700
    for name in ("keyway.db", "keyway.db-wal", "keyway.db-shm"):
        if (data_dir / name).exists():
            assert mode(data_dir / name) == 0o600, name
    # Files left readable by an older version are tightened on the next start.
    for name in ("keyway.db", "keyway.db-wal", "keyway.db-shm"):
        if (data_dir / name).exists():
            (data_dir / name).chmod(0o644)
    start_and_close(data_dir)
    for name in ("keyway.db", "keyway.db-wal", "keyway.db-shm", "keyway.lock"):
        if (data_dir / name).exists():
            assert mode(data_dir / name) == 0o600, name


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda d: d.chmod(0o777), "writable by group or others"),
        (lambda d: d.chmod(0o775), "writable by group or others"),
        (lambda d: os.chown(d, OTHER_UID, -1), "owned by uid"),
    ],
)
def test_an_unsafe_data_directory_is_refused_before_anything_is_written(
    tmp_path: Path, setup: Callable[[Path], None], problem: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    setup(data_dir)
    with pytest.raises(StartupError, match=problem):
        ControlPlane(settings(data_dir))
    assert list(data_dir.iterdir()) == []


def test_a_master_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    start_and_close(data_dir)
    (data_dir / "master.keys").chmod(0o644)
    with pytest.raises(StartupError, match=r"master.keys.*mode 0644"):
        ControlPlane(settings(data_dir))


# -- the proxy's snapshot cache --------------------------------------------------------------


def test_a_planted_cache_key_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    planted = cache_dir / "cache.key"
    planted.write_text("A" * 43 + "=")  # a key the attacker knows
    planted.chmod(0o644)
    with pytest.raises(UnsafePathError, match=r"cache\.key"):
        SnapshotCache(cache_dir, environ={})
    os.chown(planted, OTHER_UID, -1)
    planted.chmod(0o600)
    with pytest.raises(UnsafePathError, match="owned by uid"):
        SnapshotCache(cache_dir, environ={})


def test_a_cache_key_symlink_is_refused(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    known = attacker_file(tmp_path)
    known.write_text("B" * 43 + "=")
    known.chmod(0o600)
    (cache_dir / "cache.key").symlink_to(known)
    with pytest.raises(UnsafePathError, match=r"cache\.key: it is a symlink"):
        SnapshotCache(cache_dir, environ={})


def test_a_shared_cache_directory_is_refused(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache_dir.chmod(0o777)
    with pytest.raises(UnsafePathError, match="writable by group or others"):
        SnapshotCache(cache_dir, environ={})


def test_cache_files_are_private_and_never_written_through_symlinks(tmp_path: Path) -> None:
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir(mode=0o700)
    victim = attacker_file(tmp_path)
    for name in ("snapshot.bin.new", "snapshot.bin.new.tmp", "snapshot.bin.tmp", "cache.key.tmp"):
        (cache_dir / name).symlink_to(victim)
    cache = SnapshotCache(cache_dir, environ={})
    cache.save(1, "0" * 64, b"payload")
    cache.save(2, "1" * 64, b"payload")
    assert victim.read_text() == ""
    assert mode(cache_dir) == 0o700
    for name in ("cache.key", "snapshot.bin"):
        assert mode(cache_dir / name) == 0o600
