import base64
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from control_plane.secrets.errors import SealError, UnknownKeyError
from control_plane.secrets.keyring import (
    EnvKeyProvider,
    FileKeyProvider,
    KeyProvider,
    load_key_provider,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
B64_A = base64.urlsafe_b64encode(KEY_A).decode()
B64_B = base64.urlsafe_b64encode(KEY_B).decode()
B64_SHORT = base64.urlsafe_b64encode(KEY_A[:16]).decode()
ID_PATTERN = re.compile(r"kek_[a-z2-7]{12}")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def write_private_file(path: Path, content: str | bytes) -> Path:
    """A hand-written key file with the mode the keyring requires (0600)."""
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def write_keyring(path: Path, doc: object) -> Path:
    return write_private_file(path, json.dumps(doc))


# --- file provider -----------------------------------------------------------------------


def test_open_or_create_makes_a_private_keyring(tmp_path: Path) -> None:
    path = tmp_path / "data" / "master.keys"
    provider = FileKeyProvider.open_or_create(path)

    kek_id, key = provider.current()
    assert ID_PATTERN.fullmatch(kek_id)
    assert len(key) == 32
    assert provider.ids() == [kek_id]
    assert mode(path) == 0o600
    doc = json.loads(path.read_text())
    assert doc == {"version": 1, "current": kek_id, "keys": {kek_id: doc["keys"][kek_id]}}
    assert base64.urlsafe_b64decode(doc["keys"][kek_id]) == key
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_open_or_create_reopens_an_existing_keyring(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    first = FileKeyProvider.open_or_create(path)
    again = FileKeyProvider.open_or_create(path)
    assert again.current() == first.current()


def test_injected_randomness_makes_the_key(tmp_path: Path) -> None:
    def token_bytes(n: int) -> bytes:
        return KEY_A[:n]

    provider = FileKeyProvider.open_or_create(tmp_path / "master.keys", token_bytes=token_bytes)
    kek_id, key = provider.current()
    assert key == KEY_A
    assert kek_id == "kek_" + base64.b32encode(KEY_A[:8]).decode()[:12].lower()


def test_create_rotates_and_keeps_old_keys(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    provider = FileKeyProvider.open_or_create(path)
    old_id, old_key = provider.current()

    new_id = provider.create()

    assert ID_PATTERN.fullmatch(new_id)
    assert new_id != old_id
    assert provider.current()[0] == new_id
    assert provider.ids() == [new_id, old_id]
    assert provider.get(old_id) == old_key
    assert mode(path) == 0o600
    assert FileKeyProvider(path).current() == provider.current()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_create_keeps_a_key_added_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    first = FileKeyProvider.open_or_create(path)
    second = FileKeyProvider(path)
    from_first = first.create()
    from_second = second.create()
    assert set(FileKeyProvider(path).ids()) == {*first.ids(), from_first, from_second}


def test_get_sees_a_key_created_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    stale = FileKeyProvider.open_or_create(path)
    rotator = FileKeyProvider(path)
    new_id = rotator.create()
    assert stale.get(new_id) == rotator.current()[1]


def test_create_refuses_a_colliding_id(tmp_path: Path) -> None:
    def token_bytes(n: int) -> bytes:
        return b"\x07" * n

    provider = FileKeyProvider.open_or_create(tmp_path / "master.keys", token_bytes=token_bytes)
    with pytest.raises(SealError, match="already exists"):
        provider.create()


def test_unknown_id(tmp_path: Path) -> None:
    provider = FileKeyProvider.open_or_create(tmp_path / "master.keys")
    with pytest.raises(UnknownKeyError, match="kek_missing"):
        provider.get("kek_missing")


def test_retire(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    provider = FileKeyProvider.open_or_create(path)
    old_id = provider.current()[0]
    new_id = provider.create()

    provider.retire(old_id)

    assert provider.ids() == [new_id]
    assert FileKeyProvider(path).ids() == [new_id]
    with pytest.raises(UnknownKeyError):
        provider.get(old_id)


def test_retire_refuses_the_current_key(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    provider = FileKeyProvider.open_or_create(path)
    current = provider.current()[0]
    with pytest.raises(SealError, match="current key"):
        provider.retire(current)
    assert FileKeyProvider(path).ids() == [current]


def test_retire_unknown_key(tmp_path: Path) -> None:
    provider = FileKeyProvider.open_or_create(tmp_path / "master.keys")
    with pytest.raises(UnknownKeyError):
        provider.retire("kek_nope")


def test_missing_file_without_create(tmp_path: Path) -> None:
    path = tmp_path / "master.keys"
    with pytest.raises(SealError, match="cannot read keyring file") as info:
        FileKeyProvider(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ([], "must contain a JSON object"),
        ({"current": "a", "keys": {"a": B64_A}}, "unsupported 'version'"),
        ({"version": 2, "current": "a", "keys": {"a": B64_A}}, "unsupported 'version'"),
        ({"version": True, "current": "a", "keys": {"a": B64_A}}, "unsupported 'version'"),
        ({"version": 1, "keys": {"a": B64_A}}, "no 'current' key id"),
        ({"version": 1, "current": 7, "keys": {"a": B64_A}}, "no 'current' key id"),
        ({"version": 1, "current": "a"}, "no 'keys' object"),
        ({"version": 1, "current": "a", "keys": {}}, "no 'keys' object"),
        ({"version": 1, "current": "a", "keys": [B64_A]}, "no 'keys' object"),
        ({"version": 1, "current": "b", "keys": {"a": B64_A}}, "current key 'b' is not in 'keys'"),
        ({"version": 1, "current": "a", "keys": {"a": B64_A + "*"}}, "'a' is not urlsafe base64"),
        ({"version": 1, "current": "a", "keys": {"a": "abcde"}}, "'a' is not urlsafe base64"),
        ({"version": 1, "current": "a", "keys": {"a": 5}}, "'a' is not urlsafe base64"),
        ({"version": 1, "current": "a", "keys": {"a": B64_SHORT}}, "'a' is 16 bytes, expected 32"),
        ({"version": 1, "current": "a", "keys": {"a": B64_A, "b c": B64_B}}, "invalid key id"),
        ({"version": 1, "current": B64_B, "keys": {"a": B64_A}}, "invalid 'current' key id"),
    ],
)
def test_invalid_keyring_file(tmp_path: Path, content: object, problem: str) -> None:
    path = tmp_path / "master.keys"
    if isinstance(content, (bytes, str)):
        write_private_file(path, content)
    else:
        write_keyring(path, content)

    with pytest.raises(SealError) as info:
        FileKeyProvider(path)

    message = str(info.value)
    assert problem in message
    assert str(path) in message
    for material in (B64_A, B64_B, B64_SHORT):
        assert material not in message


def test_invalid_file_is_not_replaced_by_open_or_create(tmp_path: Path) -> None:
    path = write_keyring(tmp_path / "master.keys", {"version": 1})
    with pytest.raises(SealError):
        FileKeyProvider.open_or_create(path)
    assert json.loads(path.read_text()) == {"version": 1}


def test_accepts_a_valid_hand_written_file(tmp_path: Path) -> None:
    path = write_keyring(
        tmp_path / "master.keys",
        {"version": 1, "current": "b", "keys": {"a": B64_A, "b": B64_B}},
    )
    provider = FileKeyProvider(path)
    assert provider.current() == ("b", KEY_B)
    assert provider.ids() == ["b", "a"]
    assert provider.get("a") == KEY_A


VALID = {"version": 1, "current": "a", "keys": {"a": B64_A}}


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o660, 0o666])
def test_a_key_file_others_can_read_is_refused(tmp_path: Path, loose: int) -> None:
    path = write_keyring(tmp_path / "master.keys", VALID)
    path.chmod(loose)
    for attempt in (FileKeyProvider, FileKeyProvider.open_or_create):
        with pytest.raises(SealError, match=f"mode {loose:04o}.*chmod 600") as info:
            attempt(path)
        assert B64_A not in str(info.value)
    assert mode(path) == loose  # refused, not silently "fixed"


def test_a_key_file_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    path = write_keyring(tmp_path / "master.keys", VALID)
    os.chown(path, os.geteuid() + 4242, -1)
    with pytest.raises(SealError, match="owned by uid"):
        FileKeyProvider(path)


def test_a_planted_symlink_as_key_file_is_refused(tmp_path: Path) -> None:
    target = write_keyring(tmp_path / "attacker.keys", VALID)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    (data / "master.keys").symlink_to(target)
    with pytest.raises(SealError, match="symlink"):
        FileKeyProvider.open_or_create(data / "master.keys")


def test_a_symlink_planted_at_a_temp_name_is_never_written_through(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    victim = tmp_path / "attacker-readable"
    victim.write_text("")
    victim.chmod(0o644)
    for name in ("master.keys.tmp", ".master.keys.tmp", "master.keys.new"):
        (data / name).symlink_to(victim)
    provider = FileKeyProvider.open_or_create(data / "master.keys")
    provider.create()
    assert victim.read_text() == ""
    assert mode(data / "master.keys") == 0o600


@pytest.mark.parametrize(
    ("setup", "problem"),
    [
        (lambda d: d.chmod(0o777), "writable by group or others"),
        (lambda d: d.chmod(0o770), "writable by group or others"),
        (lambda d: os.chown(d, os.geteuid() + 4242, -1), "owned by uid"),
    ],
)
def test_an_unsafe_data_directory_is_refused(
    tmp_path: Path, setup: Callable[[Path], None], problem: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    setup(data)
    with pytest.raises(SealError, match=problem):
        FileKeyProvider.open_or_create(data / "master.keys")
    assert not (data / "master.keys").exists()


# --- environment provider ----------------------------------------------------------------


def test_env_first_entry_is_current() -> None:
    provider: KeyProvider = EnvKeyProvider(f"new:{B64_B},old:{B64_A}")
    assert provider.current() == ("new", KEY_B)
    assert provider.ids() == ["new", "old"]
    assert provider.get("old") == KEY_A
    assert provider.create() is None
    with pytest.raises(UnknownKeyError):
        provider.get("other")


def test_env_tolerates_whitespace_and_missing_padding() -> None:
    provider = EnvKeyProvider(f" k1 : {B64_A.rstrip('=')} , ")
    assert provider.current() == ("k1", KEY_A)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("", "holds no keys"),
        (" , ", "holds no keys"),
        (B64_A, "entry 1 is not in the form id:base64key"),
        (f"k1:{B64_A},{B64_B}", "entry 2 is not in the form id:base64key"),
        (f":{B64_A}", "entry 1 has an invalid key id"),
        (f"bad id:{B64_A}", "entry 1 has an invalid key id"),
        (f"k1:{B64_A},k1:{B64_B}", "entry 2 repeats key id 'k1'"),
        (f"k1:{B64_A}!", "entry 1 ('k1') is not urlsafe base64"),
        ("k1:", "entry 1 ('k1') is not urlsafe base64"),
        (f"k1:{B64_SHORT}", "entry 1 ('k1') is 16 bytes, expected 32"),
    ],
)
def test_env_invalid(value: str, problem: str) -> None:
    with pytest.raises(SealError) as info:
        EnvKeyProvider(value)
    message = str(info.value)
    assert "KEYWAY_MASTER_KEYS" in message
    assert problem in message
    for material in (B64_A, B64_B, B64_SHORT):
        assert material not in message


# --- selection -----------------------------------------------------------------------------


def test_load_prefers_the_environment(tmp_path: Path) -> None:
    provider = load_key_provider(tmp_path, {"KEYWAY_MASTER_KEYS": f"k1:{B64_A}"})
    assert isinstance(provider, EnvKeyProvider)
    assert provider.current() == ("k1", KEY_A)
    assert os.listdir(tmp_path) == []


def test_load_empty_environment_value_fails_instead_of_creating_a_file(tmp_path: Path) -> None:
    with pytest.raises(SealError, match="holds no keys"):
        load_key_provider(tmp_path, {"KEYWAY_MASTER_KEYS": ""})
    assert not (tmp_path / "master.keys").exists()


def test_load_falls_back_to_the_data_dir_file(tmp_path: Path) -> None:
    provider = load_key_provider(tmp_path, {})
    assert isinstance(provider, FileKeyProvider)
    assert mode(tmp_path / "master.keys") == 0o600
    assert load_key_provider(tmp_path, {}).current() == provider.current()
