import dataclasses
import secrets
import traceback
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control_plane.secrets.errors import SealError, UnknownKeyError
from control_plane.secrets.keyring import FileKeyProvider
from control_plane.secrets.sealing import SealedSecret, Sealer, legacy_row_aad, row_aad
from control_plane.secrets.secret import Secret

VALUE = "sk-proj-abcdefghijklmnopqrstuvwxyz0123"
AAD = b"pk_123:1"


class MemoryKeys:
    """In-memory KeyProvider; the newest key is current."""

    def __init__(self, *keys: tuple[str, bytes]) -> None:
        self._keys = dict(keys) or {"kek_a": secrets.token_bytes(32)}

    def current(self) -> tuple[str, bytes]:
        kek_id = next(reversed(self._keys))
        return kek_id, self._keys[kek_id]

    def get(self, kek_id: str) -> bytes:
        try:
            return self._keys[kek_id]
        except KeyError:
            raise UnknownKeyError(kek_id) from None

    def create(self) -> str:
        kek_id = f"kek_{len(self._keys)}"
        self._keys[kek_id] = secrets.token_bytes(32)
        return kek_id

    def ids(self) -> list[str]:
        return list(reversed(self._keys))


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def replace_blob(sealed: SealedSecret, field: str, blob: bytes) -> SealedSecret:
    if field == "ciphertext":
        return dataclasses.replace(sealed, ciphertext=blob)
    return dataclasses.replace(sealed, wrapped_key=blob)


def assert_clean(error: BaseException) -> None:
    rendered = "".join(traceback.format_exception(error))
    for text in (str(error), repr(error), rendered):
        assert VALUE not in text
        assert "abcdefghij" not in text


def test_round_trip() -> None:
    sealer = Sealer(MemoryKeys())
    sealed = sealer.seal(Secret(VALUE), AAD)
    assert sealed.kek_id == "kek_a"
    assert sealer.open(sealed, AAD).reveal() == VALUE


@given(value=st.text(), aad=st.binary())
def test_round_trip_property(value: str, aad: bytes) -> None:
    sealer = Sealer(MemoryKeys())
    assert sealer.open(sealer.seal(Secret(value), aad), aad).reveal() == value


def test_each_seal_uses_fresh_randomness() -> None:
    sealer = Sealer(MemoryKeys())
    first, second = sealer.seal(Secret(VALUE), AAD), sealer.seal(Secret(VALUE), AAD)
    assert first.ciphertext != second.ciphertext
    assert first.wrapped_key != second.wrapped_key


def test_layout_is_nonce_plus_aead_output() -> None:
    sealed = Sealer(MemoryKeys()).seal(Secret(VALUE), AAD)
    assert len(sealed.ciphertext) == 12 + len(VALUE.encode()) + 16
    assert len(sealed.wrapped_key) == 12 + 32 + 16


def test_sealed_form_and_its_repr_hold_no_plaintext() -> None:
    sealed = Sealer(MemoryKeys()).seal(Secret(VALUE), AAD)
    assert VALUE.encode() not in sealed.ciphertext
    assert "abcdefghij" not in repr(sealed)
    with pytest.raises(dataclasses.FrozenInstanceError):
        sealed.kek_id = "kek_b"  # type: ignore[misc]


def test_wrong_kek_is_an_error_not_garbage() -> None:
    sealed = Sealer(MemoryKeys(("kek_a", b"\x01" * 32))).seal(Secret(VALUE), AAD)
    impostor = Sealer(MemoryKeys(("kek_a", b"\x02" * 32)))
    with pytest.raises(SealError, match="authentication failed") as info:
        impostor.open(sealed, AAD)
    assert_clean(info.value)


def test_unknown_kek_id() -> None:
    sealed = Sealer(MemoryKeys(("kek_a", b"\x01" * 32))).seal(Secret(VALUE), AAD)
    with pytest.raises(UnknownKeyError):
        Sealer(MemoryKeys(("kek_b", b"\x01" * 32))).open(sealed, AAD)


@pytest.mark.parametrize("wrong_aad", [b"pk_124:1", b"pk_123:2", b"pk_123:1 ", b""])
def test_wrong_row_or_version_is_refused(wrong_aad: bytes) -> None:
    sealer = Sealer(MemoryKeys())
    sealed = sealer.seal(Secret(VALUE), AAD)
    with pytest.raises(SealError, match="authentication failed") as info:
        sealer.open(sealed, wrong_aad)
    assert_clean(info.value)
    with pytest.raises(SealError, match="authentication failed"):
        sealer.rewrap(sealed, wrong_aad)


@pytest.mark.parametrize("field", ["ciphertext", "wrapped_key"])
@pytest.mark.parametrize("index", [0, 11, 12, 20, -1])
def test_tampering_is_detected(field: str, index: int) -> None:
    sealer = Sealer(MemoryKeys())
    sealed = sealer.seal(Secret(VALUE), AAD)
    blob: bytes = getattr(sealed, field)
    tampered = replace_blob(sealed, field, flip(blob, index % len(blob)))
    with pytest.raises(SealError, match="authentication failed") as info:
        sealer.open(tampered, AAD)
    assert_clean(info.value)


@pytest.mark.parametrize("length", [0, 11, 27])
def test_truncated_blobs_are_refused(length: int) -> None:
    sealer = Sealer(MemoryKeys())
    sealed = sealer.seal(Secret(VALUE), AAD)
    for field in ("ciphertext", "wrapped_key"):
        truncated = replace_blob(sealed, field, getattr(sealed, field)[:length])
        with pytest.raises(SealError, match="authentication failed"):
            sealer.open(truncated, AAD)


def test_parts_of_two_sealed_secrets_cannot_be_mixed() -> None:
    sealer = Sealer(MemoryKeys())
    first = sealer.seal(Secret(VALUE), AAD)
    second = sealer.seal(Secret("other"), AAD)
    with pytest.raises(SealError):
        sealer.open(dataclasses.replace(first, ciphertext=second.ciphertext), AAD)
    # A wrapped DEK is not accepted as a sealed value (separate associated data).
    with pytest.raises(SealError):
        sealer.open(dataclasses.replace(first, ciphertext=first.wrapped_key), AAD)


def test_unencodable_value_is_refused_without_leaking() -> None:
    with pytest.raises(SealError) as info:
        Sealer(MemoryKeys()).seal(Secret(VALUE + "\ud800"), AAD)
    assert info.value.__context__ is None
    assert_clean(info.value)


def test_rewrap_after_rotation(tmp_path: Path) -> None:
    provider = FileKeyProvider.open_or_create(tmp_path / "master.keys")
    sealer = Sealer(provider)
    old_id = provider.current()[0]
    sealed = sealer.seal(Secret(VALUE), AAD)
    assert not sealer.needs_rewrap(sealed)

    new_id = provider.create()
    assert sealer.needs_rewrap(sealed)
    assert sealer.open(sealed, AAD).reveal() == VALUE  # old data stays readable

    rewrapped = sealer.rewrap(sealed, AAD)
    assert rewrapped.kek_id == new_id != old_id
    assert rewrapped.ciphertext == sealed.ciphertext
    assert not sealer.needs_rewrap(rewrapped)
    assert sealer.open(rewrapped, AAD).reveal() == VALUE
    assert provider.ids() == [new_id, old_id]

    provider.retire(old_id)
    assert sealer.open(rewrapped, AAD).reveal() == VALUE
    with pytest.raises(UnknownKeyError):
        sealer.open(sealed, AAD)


def test_rewrapped_secret_is_still_bound_to_its_aad() -> None:
    provider = MemoryKeys()
    sealer = Sealer(provider)
    sealed = sealer.seal(Secret(VALUE), AAD)
    provider.create()
    rewrapped = sealer.rewrap(sealed, AAD)
    with pytest.raises(SealError):
        sealer.open(rewrapped, b"pk_999:1")


def test_injected_randomness_is_used() -> None:
    calls: list[int] = []

    def token_bytes(n: int) -> bytes:
        calls.append(n)
        return secrets.token_bytes(n)

    sealer = Sealer(MemoryKeys(), token_bytes=token_bytes)
    sealer.seal(Secret(VALUE), AAD)
    assert sorted(calls) == [12, 12, 32]


def test_the_row_aad_binds_owner_provider_row_and_version() -> None:
    sealer = Sealer(MemoryKeys())
    aad = row_aad("acct_a", "openai", "pk_1", 1)
    sealed = sealer.seal(Secret(VALUE), aad)
    assert sealer.open(sealed, aad).reveal() == VALUE
    for moved in (
        row_aad("acct_b", "openai", "pk_1", 1),  # another tenant
        row_aad("acct_a", "groq", "pk_1", 1),  # another upstream
        row_aad("acct_a", "openai", "pk_2", 1),  # another row
        row_aad("acct_a", "openai", "pk_1", 2),  # replayed from before a rotation
        legacy_row_aad("pk_1", 1),  # downgraded to the format without the owner
    ):
        with pytest.raises(SealError):
            sealer.open(sealed, moved)


def test_row_aad_fields_cannot_run_into_each_other() -> None:
    # With plain concatenation ("a:b" + "c") these would collide.
    assert row_aad("acct:x", "y", "pk", 1) != row_aad("acct", "x:y", "pk", 1)
    assert row_aad("a", "b", "c", 12) != row_aad("a", "b", "c1", 2)
