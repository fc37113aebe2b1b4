"""Key-encryption keys (KEKs): where they live and how a new one becomes current.

A KEK only ever wraps data keys (see sealing.py), so rotating it re-wraps data keys and
never re-encrypts secrets. Old KEKs stay in the keyring until every data key wrapped
under them has been re-wrapped, then `FileKeyProvider.retire` drops them.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from control_plane.secrets.errors import SealError, UnknownKeyError
from data_plane.shared.private_files import (
    UnsafePathError,
    ensure_private_dir,
    locked,
    read_private,
    write_private,
)

KEY_BYTES = 32
ENV_VAR = "KEYWAY_MASTER_KEYS"
_FILE_NAME = "master.keys"
_FILE_VERSION = 1
# Ids end up in error messages and database rows, so they are restricted to harmless text.
_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_KEY_PATTERN = re.compile(r"[A-Za-z0-9_-]+={0,2}")

_TokenBytes = Callable[[int], bytes]


class KeyProvider(Protocol):
    def current(self) -> tuple[str, bytes]:
        """The id and 32-byte key that new data keys are wrapped with."""
        ...

    def get(self, kek_id: str) -> bytes:
        """The key with this id; `UnknownKeyError` when there is none."""
        ...

    def create(self) -> str | None:
        """Make a new key current and return its id; None if this provider cannot."""
        ...

    def ids(self) -> list[str]:
        """Every key id, current first."""
        ...


@dataclass(frozen=True, slots=True)
class _Keyring:
    current: str
    keys: Mapping[str, bytes]

    def get(self, kek_id: str) -> bytes:
        try:
            return self.keys[kek_id]
        except KeyError:
            raise _unknown(kek_id) from None

    def ids(self) -> list[str]:
        return [self.current, *(kek_id for kek_id in self.keys if kek_id != self.current)]


def _unknown(kek_id: str) -> UnknownKeyError:
    return UnknownKeyError(f"unknown key-encryption key {kek_id!r}")


def _decode_key(text: object, where: str) -> bytes:
    # Lenient about missing padding (people strip it in env vars), strict about everything else.
    if not isinstance(text, str) or not _KEY_PATTERN.fullmatch(text):
        raise SealError(f"{where} is not urlsafe base64")
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SealError(f"{where} is not urlsafe base64") from None
    if len(key) != KEY_BYTES:
        raise SealError(f"{where} is {len(key)} bytes, expected {KEY_BYTES}")
    return key


def _encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def _new_key(existing: Mapping[str, bytes], token_bytes: _TokenBytes) -> tuple[str, bytes]:
    kek_id = "kek_" + base64.b32encode(token_bytes(8)).decode("ascii")[:12].lower()
    if kek_id in existing:
        raise SealError(f"generated key id {kek_id!r} already exists; is the random source broken?")
    key = token_bytes(KEY_BYTES)
    if len(key) != KEY_BYTES:
        raise SealError(f"random source returned {len(key)} bytes, expected {KEY_BYTES}")
    return kek_id, key


class FileKeyProvider:
    """A keyring in a local JSON file (mode 0600), e.g. `<data dir>/master.keys`.

    `{"version": 1, "current": "<id>", "keys": {"<id>": "<urlsafe base64 of 32 bytes>"}}`

    A file that is a symlink, owned by another user or readable by group or others is
    refused: whoever could replace it could make new secrets sealed under their key.
    """

    __slots__ = ("_keyring", "_path", "_token_bytes")

    def __init__(self, path: Path, *, token_bytes: _TokenBytes = secrets.token_bytes) -> None:
        self._path = path
        self._token_bytes = token_bytes
        self._keyring = self._read()

    @classmethod
    def open_or_create(
        cls, path: Path, *, token_bytes: _TokenBytes = secrets.token_bytes
    ) -> FileKeyProvider:
        """Open the keyring at `path`, first creating it with one random key if it is missing."""
        _private_dir(path.parent)
        # Under the lock, so two processes starting together cannot each write a different
        # first key and lose whatever the other one sealed.
        with _locked(path):
            if not path.exists() and not path.is_symlink():
                kek_id, key = _new_key({}, token_bytes)
                write_private(path, _dump(_Keyring(kek_id, {kek_id: key})))
        return cls(path, token_bytes=token_bytes)

    def current(self) -> tuple[str, bytes]:
        return self._keyring.current, self._keyring.keys[self._keyring.current]

    def get(self, kek_id: str) -> bytes:
        if kek_id not in self._keyring.keys:
            # Another control-plane process may have rotated since we loaded the file.
            self._keyring = self._read()
        return self._keyring.get(kek_id)

    def ids(self) -> list[str]:
        return self._keyring.ids()

    def create(self) -> str:
        with _locked(self._path):
            # Re-read under the lock so a concurrent rotation's key is kept, not overwritten.
            keyring = self._read()
            kek_id, key = _new_key(keyring.keys, self._token_bytes)
            updated = _Keyring(kek_id, {**keyring.keys, kek_id: key})
            write_private(self._path, _dump(updated))
        self._keyring = updated
        return kek_id

    def retire(self, kek_id: str) -> None:
        """Remove a non-current key once no data key is wrapped under it any more."""
        with _locked(self._path):
            keyring = self._read()
            if kek_id not in keyring.keys:
                raise _unknown(kek_id)
            if kek_id == keyring.current:
                raise SealError(f"cannot retire {kek_id!r}: it is the current key")
            keys = {other: key for other, key in keyring.keys.items() if other != kek_id}
            updated = _Keyring(keyring.current, keys)
            write_private(self._path, _dump(updated))
        self._keyring = updated

    def _read(self) -> _Keyring:
        where = f"keyring file {self._path}"
        try:
            raw = read_private(self._path)
        except UnsafePathError as exc:
            raise SealError(str(exc)) from None
        except OSError as exc:
            raise SealError(f"cannot read {where}: {exc.strerror or type(exc).__name__}") from None
        try:
            doc = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            # Not the decoder's message: it may quote a fragment of the file.
            raise SealError(f"{where} is not valid JSON") from None
        if not isinstance(doc, dict):
            raise SealError(f"{where} must contain a JSON object")
        version = doc.get("version")
        if type(version) is not int or version != _FILE_VERSION:
            raise SealError(f"{where} has an unsupported 'version' (expected {_FILE_VERSION})")
        current = doc.get("current")
        if not isinstance(current, str) or not current:
            raise SealError(f"{where} has no 'current' key id")
        entries = doc.get("keys")
        if not isinstance(entries, dict) or not entries:
            raise SealError(f"{where} has no 'keys' object with at least one key")
        keys: dict[str, bytes] = {}
        for kek_id, text in entries.items():
            if not _ID_PATTERN.fullmatch(kek_id):
                raise SealError(f"{where} has an invalid key id in 'keys'")
            keys[kek_id] = _decode_key(text, f"{where}: key {kek_id!r}")
        if current not in keys:
            if not _ID_PATTERN.fullmatch(current):
                raise SealError(f"{where} has an invalid 'current' key id")
            raise SealError(f"{where}: current key {current!r} is not in 'keys'")
        return _Keyring(current, keys)


class EnvKeyProvider:
    """A keyring from an environment value `id1:base64key,id2:base64key`; the first is current.

    Rotation happens outside Keyway (prepend a new entry, restart), so `create()` returns None.
    """

    __slots__ = ("_keyring",)

    def __init__(self, value: str) -> None:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if not entries:
            raise SealError(f"{ENV_VAR} is set but holds no keys")
        keys: dict[str, bytes] = {}
        for number, entry in enumerate(entries, start=1):
            # Errors count entries instead of quoting them: a mistyped entry may be a bare key.
            where = f"{ENV_VAR} entry {number}"
            kek_id, sep, text = entry.partition(":")
            kek_id = kek_id.strip()
            if not sep:
                raise SealError(f"{where} is not in the form id:base64key")
            if not _ID_PATTERN.fullmatch(kek_id):
                raise SealError(f"{where} has an invalid key id")
            if kek_id in keys:
                raise SealError(f"{where} repeats key id {kek_id!r}")
            keys[kek_id] = _decode_key(text.strip(), f"{where} ({kek_id!r})")
        self._keyring = _Keyring(next(iter(keys)), keys)

    def current(self) -> tuple[str, bytes]:
        return self._keyring.current, self._keyring.keys[self._keyring.current]

    def get(self, kek_id: str) -> bytes:
        return self._keyring.get(kek_id)

    def ids(self) -> list[str]:
        return self._keyring.ids()

    def create(self) -> None:
        return None


def key_file(data_dir: Path) -> Path:
    return data_dir / _FILE_NAME


def load_key_provider(
    data_dir: Path, environ: Mapping[str, str], path: Path | None = None
) -> KeyProvider:
    """`KEYWAY_MASTER_KEYS` when set (even empty, so a broken deployment fails loudly
    instead of quietly starting a fresh key file), else the key file `path` (by default
    `<data_dir>/master.keys`)."""
    value = environ.get(ENV_VAR)
    if value is not None:
        return EnvKeyProvider(value)
    return FileKeyProvider.open_or_create(path or key_file(data_dir))


def _dump(keyring: _Keyring) -> bytes:
    doc = {
        "version": _FILE_VERSION,
        "current": keyring.current,
        "keys": {kek_id: _encode_key(key) for kek_id, key in keyring.keys.items()},
    }
    return (json.dumps(doc, indent=2) + "\n").encode("ascii")


def _private_dir(path: Path) -> None:
    try:
        ensure_private_dir(path)
    except UnsafePathError as exc:
        raise SealError(str(exc)) from None


def _locked(path: Path) -> AbstractContextManager[None]:
    return locked(path.with_name(path.name + ".lock"))
