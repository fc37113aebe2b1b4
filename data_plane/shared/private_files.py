"""The one way either plane writes and reads a secret file.

Tokens, master keys, the snapshot-cache key and the snapshot cache all go through here, so
they share the guarantees that matter against another local user:

- a write never follows a planted symlink and is never visible half-written: a temp file
  with a random name is created with `O_CREAT | O_EXCL | O_NOFOLLOW` and mode 0600, filled,
  fsynced, renamed over the target, and the directory is fsynced;
- a directory holding secrets is created 0700 and refused when another user owns it or
  when group or others may write to it (they could swap files in it);
- an existing secret file is refused when it is a symlink, not a regular file, owned by
  another user, or readable or writable by group or others (also before it is renamed).

A test checks that no other module of either plane writes, renames or creates files.

Errors name the path and the problem, never file contents.
"""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePathError(OSError):
    """A secret file or directory is not private to this user; the message says why."""


def _owner_problem(info: os.stat_result) -> str | None:
    if info.st_uid != os.geteuid():
        return f"is owned by uid {info.st_uid}, not by this user (uid {os.geteuid()})"
    return None


def ensure_private_dir(path: Path) -> Path:
    """Creates `path` (and parents) as 0700, or checks an existing directory is safe."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UnsafePathError(f"{path} is not a directory")
    problem = _owner_problem(info)
    if problem is None and info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        problem = (
            f"is writable by group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run `chmod 700 {path}`"
        )
    if problem is not None:
        raise UnsafePathError(f"refusing to keep secrets in {path}: it {problem}")
    return path


def write_private(path: Path, data: bytes) -> None:
    """Replaces `path` atomically with `data`, mode 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, _WRITE_FLAGS, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def rename_private(source: Path, target: Path) -> None:
    """Moves the secret file `source` over `target` (keeping a previous copy, say), once
    `source` is checked to be a regular file private to this user; durably."""
    _check_file(source, os.lstat(source))
    os.replace(source, target)
    fsync_dir(target.parent)


def fsync_dir(directory: Path) -> None:
    """Makes renames and creations in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _open(path: Path, flags: int, mode: int = 0o600) -> int:
    try:
        return os.open(path, flags, mode)
    except OSError as error:
        if error.errno == errno.ELOOP:  # O_NOFOLLOW met a symlink
            raise UnsafePathError(f"refusing to use {path}: it is a symlink") from None
        raise


def _check_file(path: Path, info: os.stat_result) -> None:
    regular = stat.S_ISREG(info.st_mode)
    problem = _owner_problem(info) if regular else "is not a regular file"
    if problem is None and info.st_mode & 0o077:
        problem = (
            f"is accessible to group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
            f"run `chmod 600 {path}`"
        )
    if problem is not None:
        raise UnsafePathError(f"refusing to use {path}: it {problem}")


def read_private(path: Path) -> bytes:
    """The contents of an existing secret file, after checking it is private to this user.

    `FileNotFoundError` when it does not exist; `UnsafePathError` when it is a symlink or
    anyone else could read or replace it.
    """
    fd = _open(path, _READ_FLAGS)
    try:
        _check_file(path, os.fstat(fd))
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def open_private(path: Path, flags: int = os.O_RDWR) -> int:
    """A file descriptor on `path`, created 0600 if missing (lock files, databases).

    Refuses symlinks and files anyone else could read; an existing file of ours that is
    merely too open (older versions created 0644 databases) is tightened to 0600.
    """
    fd = _open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and _owner_problem(info) is None and info.st_mode & 0o077:
            os.fchmod(fd, 0o600)
            info = os.fstat(fd)
        _check_file(path, info)
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on the 0600 lock file `path` (blocking) for the block.

    A sidecar lock file, because the files it protects are replaced (new inode) on write.
    """
    fd = open_private(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
