"""Errors of the secrets layer.

Messages name files, key ids and the kind of problem only: never plaintext, key
material or ciphertext, so they are safe to log and to return in status tables.
"""

from __future__ import annotations


class SealError(Exception):
    """A secret could not be sealed or opened, or the keyring is unusable."""


class UnknownKeyError(SealError):
    """A key-encryption key id is not (or no longer) in the keyring."""
