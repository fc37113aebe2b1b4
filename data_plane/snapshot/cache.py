"""The last known good snapshot on disk, encrypted under a proxy-local key.

Lets a proxy restart and serve while the control plane is away. Writes are
atomic (temp file, fsync, rename) and keep the previous copy; anything that
fails to read, decrypt or verify is skipped, never fatal. The directory must be
private to this user (0700) and a key file anyone else could have planted or read
is refused: whoever knows the key can read every provider key in the cache.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from data_plane.shared.private_files import (
    ensure_private_dir,
    read_private,
    rename_private,
    write_private,
)

log = logging.getLogger("keyway.data_plane.cache")

_MAGIC = b"KWSC1\n"
_CURRENT = "snapshot.bin"
_PREVIOUS = "snapshot.prev.bin"
_KEY_FILE = "cache.key"
KEY_ENV = "KEYWAY_CACHE_KEY"


@dataclass(frozen=True, slots=True)
class Cached:
    version: int
    sha256: str
    payload: bytes
    saved_at: float = 0.0
    """Wall-clock time the copy was written: the last moment it was known current."""

    def __repr__(self) -> str:  # the payload holds provider key values
        return f"Cached(version={self.version}, sha256={self.sha256[:12]}…)"


def _load_key(directory: Path, environ: dict[str, str] | os._Environ[str]) -> bytes:
    if KEY_ENV in environ:
        try:
            key = base64.urlsafe_b64decode(environ[KEY_ENV] + "==")
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != 32:
            raise ValueError(f"{KEY_ENV} must be 32 bytes, url-safe base64")
        return key
    path = directory / _KEY_FILE
    log.warning(
        "the snapshot cache key is stored beside the cache in %s; set %s to keep it elsewhere "
        "(a copy of this directory alone then reveals nothing)",
        directory,
        KEY_ENV,
    )
    if not path.exists() and not path.is_symlink():
        write_private(path, base64.urlsafe_b64encode(secrets.token_bytes(32)))
    try:
        key = base64.urlsafe_b64decode(read_private(path).strip())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise ValueError(f"{path} does not hold a 32-byte key")
    return key


class SnapshotCache:
    def __init__(
        self, directory: Path, environ: dict[str, str] | os._Environ[str] = os.environ
    ) -> None:
        self._dir = ensure_private_dir(directory)
        self._aead = AESGCM(_load_key(directory, environ))

    @staticmethod
    def _aad(version: int, sha256: str) -> bytes:
        return f"keyway-snapshot-cache:{version}:{sha256}".encode()

    def save(self, version: int, sha256: str, payload: bytes) -> None:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, payload, self._aad(version, sha256))
        header = _MAGIC + f"{version}\n{sha256}\n".encode()
        current = self._dir / _CURRENT
        if self._readable(current):
            # Only a good copy becomes the fallback; a corrupt one is replaced.
            rename_private(current, self._dir / _PREVIOUS)
        write_private(current, header + nonce + sealed)

    def _read(self, path: Path) -> Cached:
        blob = read_private(path)
        if not blob.startswith(_MAGIC):
            raise ValueError("not a snapshot cache file")
        version_line, sha_line, rest = blob[len(_MAGIC) :].split(b"\n", 2)
        version, sha256 = int(version_line), sha_line.decode("ascii")
        payload = self._aead.decrypt(rest[:12], rest[12:], self._aad(version, sha256))
        if hashlib.sha256(payload).hexdigest() != sha256:
            raise ValueError("content hash mismatch")
        return Cached(version, sha256, payload, path.stat().st_mtime)

    def _readable(self, path: Path) -> bool:
        try:
            self._read(path)
        except (OSError, ValueError, InvalidTag, UnicodeDecodeError):
            return False
        return True

    def candidates(self) -> Iterator[Cached]:
        """Newest first; unreadable copies are logged and skipped."""
        for name in (_CURRENT, _PREVIOUS):
            path = self._dir / name
            if not path.exists():
                continue
            try:
                yield self._read(path)
            except (OSError, ValueError, InvalidTag, UnicodeDecodeError) as error:
                reason = "cannot decrypt" if isinstance(error, InvalidTag) else str(error)
                log.warning("ignoring snapshot cache %s: %s", path, reason)
