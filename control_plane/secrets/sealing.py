"""Envelope encryption of secrets at rest.

Each secret gets its own random data key (DEK); the DEK encrypts the value and is itself
wrapped by the current key-encryption key (KEK). Rotating the KEK therefore only re-wraps
the small DEKs, never re-encrypts values.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from control_plane.secrets.errors import SealError
from control_plane.secrets.keyring import KeyProvider
from control_plane.secrets.secret import Secret

_NONCE_BYTES = 12
_TAG_BYTES = 16
_DEK_BYTES = 32
# Domain separation: a wrapped data key and a sealed value are never valid in each other's place.
_DEK_AAD_PREFIX = b"keyway-dek\x00"
_AUTH_FAILED = "cannot open sealed secret: authentication failed"


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """What is stored: `wrapped_key` and `ciphertext` are each nonce (12 bytes) + AES-GCM output."""

    kek_id: str
    wrapped_key: bytes
    ciphertext: bytes


def row_aad(account_id: str, provider_id: str, row_id: str, secret_version: int) -> bytes:
    """The associated data a sealed provider key is bound to: its owner and its row.

    Moving a sealed value to another account, another provider or another row, or
    replaying it from before a rotation, makes it fail to open instead of being used
    for someone else's requests. JSON keeps the fields unambiguous whatever they hold.
    """
    fields = ["keyway-provider-key", 2, account_id, provider_id, row_id, secret_version]
    return json.dumps(fields, separators=(",", ":")).encode()


def legacy_row_aad(row_id: str, secret_version: int) -> bytes:
    """What rows sealed before the owner was bound use (row and version only); the
    store re-seals them under `row_aad` in the background."""
    return f"{row_id}:{secret_version}".encode()


class Sealer:
    """Seals and opens secrets with keys from a `KeyProvider`.

    Every method takes `aad`; provider keys pass `row_aad(...)`.
    """

    __slots__ = ("_provider", "_token_bytes")

    def __init__(
        self,
        provider: KeyProvider,
        token_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._provider = provider
        self._token_bytes = token_bytes

    # aad binds the sealed value to its owner, row and secret version: it cannot be moved
    # to another account or row, or replayed from before a rotation.
    def seal(self, secret: Secret, aad: bytes) -> SealedSecret:
        try:
            plaintext = secret.reveal().encode("utf-8")
        except UnicodeEncodeError:
            plaintext = None
        if plaintext is None:
            # Raised outside the handler: the encode error holds the whole value.
            raise SealError("cannot seal secret: value is not valid Unicode text")
        kek_id, kek = self._provider.current()
        dek = self._token_bytes(_DEK_BYTES)
        return SealedSecret(
            kek_id=kek_id,
            wrapped_key=self._encrypt(kek, dek, _DEK_AAD_PREFIX + aad),
            ciphertext=self._encrypt(dek, plaintext, aad),
        )

    def open(self, sealed: SealedSecret, aad: bytes) -> Secret:
        dek = self._unwrap(sealed, aad)
        plaintext = _decrypt(dek, sealed.ciphertext, aad)
        try:
            text = plaintext.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is None:
            # Raised outside the handler: the decode error holds the plaintext bytes.
            raise SealError("cannot open sealed secret: value is not UTF-8")
        return Secret(text)

    def rewrap(self, sealed: SealedSecret, aad: bytes) -> SealedSecret:
        """The same secret with its data key wrapped under the current KEK; ciphertext untouched."""
        dek = self._unwrap(sealed, aad)
        kek_id, kek = self._provider.current()
        return SealedSecret(
            kek_id=kek_id,
            wrapped_key=self._encrypt(kek, dek, _DEK_AAD_PREFIX + aad),
            ciphertext=sealed.ciphertext,
        )

    def needs_rewrap(self, sealed: SealedSecret) -> bool:
        return sealed.kek_id != self.current_kek_id()

    def current_kek_id(self) -> str:
        return self._provider.current()[0]

    @property
    def provider(self) -> KeyProvider:
        return self._provider

    def _unwrap(self, sealed: SealedSecret, aad: bytes) -> bytes:
        kek = self._provider.get(sealed.kek_id)
        dek = _decrypt(kek, sealed.wrapped_key, _DEK_AAD_PREFIX + aad)
        if len(dek) != _DEK_BYTES:
            raise SealError(_AUTH_FAILED)
        return dek

    def _encrypt(self, key: bytes, data: bytes, aad: bytes) -> bytes:
        nonce = self._token_bytes(_NONCE_BYTES)
        return nonce + AESGCM(key).encrypt(nonce, data, aad)


def _decrypt(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < _NONCE_BYTES + _TAG_BYTES:
        raise SealError(_AUTH_FAILED)
    try:
        return AESGCM(key).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
    except InvalidTag:
        raise SealError(_AUTH_FAILED) from None
