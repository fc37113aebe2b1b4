"""Provider key values and credential tokens never leak: not in any RPC response, error
message or error detail, not in any log record, and not in plaintext on disk.

"Leak" means any 12-character window of the secret, so a partial echo counts too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from google.protobuf import field_mask_pb2
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import master_keys_pb2 as mk
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import providers_pb2 as prov

from control_plane.store.port import PROVIDER_KEYS

from .control_planes import RunningControlPlane
from .rpc_helpers import Api, Metadata, Recorder, auth, database_bytes, leaks, router, rule, windows
from .stores import provider_key_ids

# Distinctive values: no 12-character window of one occurs anywhere by chance.
VALUES = {
    "openai": "sk-proj-Lk2Jx9Qw4Er7Ty1Ui8Op3As6Df0Gh5Zc",
    "anthropic": "sk-ant-api03-Vb7Nm2Qa9Ws4Ed1Rf6Tg3Yh8Uj0Ik5Ol",
    "custom": "acme-Pz4Xo8Ci2Vu6Bn1My9Lt3Kr7Je5Hw0",
    "short": "Qm7Zr2Xw9Tk4Vb",  # below 20 characters: only `***` + last 4 is shown
}
ROTATED = {
    "openai": "sk-proj-Rotated9Mq3Wn7Eb1Vc5Xz8Ly2Ku4Jt6",
    "custom": "acme-Rot8Gf3Hd7Ks1Lp5Oi9Uy2Tr6Ew4Qa",
}
# Values only ever sent in requests the server refuses.
REFUSED = {
    "long name": "sk-proj-Refused1Aa2Bb3Cc4Dd5Ee6Ff7Gg8Hh",
    "unknown provider": "sk-proj-Refused2Ii3Jj4Kk5Ll6Mm7Nn8Oo9Pp",
    "newline": "sk-proj-Refused3Qq4Rr5Ss6Tt7Uu8Vv9Ww0Xx",
    "nul": "sk-proj-Refused4Yy5Zz6Ab7Cd8Ef9Gh0Ij1Kl",
    "operator": "sk-proj-Refused5Mn6Op7Qr8St9Uv0Wx1Yz2Ab",
    "unauthenticated": "sk-proj-Refused6Cd7Ef8Gh9Ij0Kl1Mn2Op3Qr",
    "rotate long name": "sk-proj-Refused7St8Uv9Wx0Yz1Ab2Cd3Ef4Gh",
    "rotate unknown id": "sk-proj-Refused8Ij9Kl0Mn1Op2Qr3St4Uv5Wx",
    "rotate stale etag": "sk-proj-Refused9Yz0Ab1Cd2Ef3Gh4Ij5Kl6Mn",
    "rotate foreign key": "sk-proj-RefusedAOp1Qr2St3Uv4Wx5Yz6Ab7Cd",
    "too long": "sk-proj-RefusedBEf2Gh3Ij4Kl5Mn6Op7Qr8St" + "x" * 8192,
}


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Everything at DEBUG, from before the server starts (request it before control_plane)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="keyway")
    caplog.set_level(logging.DEBUG, logger="keyway.control_plane")
    return caplog


def all_log_text(caplog: pytest.LogCaptureFixture) -> bytes:
    records = [*caplog.get_records("setup"), *caplog.get_records("call")]
    parts = [caplog.text]
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        parts.append(record.exc_text or "")
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
    return "\n".join(parts).encode()


def disk_bytes(data_dir: Path, *, skip: tuple[str, ...] = ()) -> bytes:
    blob = database_bytes(data_dir)
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and path.name not in skip:
            blob += path.read_bytes()
    return blob


def _expect_failure(call: Callable[[], object]) -> None:
    with pytest.raises(grpc.RpcError):
        call()


def exercise_everything(cp: RunningControlPlane, a: Api, op: Api, b: Api) -> dict[str, str]:
    """Drives every RPC that touches provider keys, successes and refusals alike.

    Returns the access/admin tokens minted on the way (they must not reach the disk).
    """
    md = a.md
    a.custom_provider("x-acme")
    keys = {
        "openai": a.provider_key("openai", VALUES["openai"], "primary"),
        "anthropic": a.provider_key("anthropic", VALUES["anthropic"], "claude"),
        "custom": a.provider_key("x-acme", VALUES["custom"], "acme"),
        "short": a.provider_key("openai", VALUES["short"], "short"),
    }
    foreign = b.provider_key("openai", "sk-proj-OtherTenant0Zz9Yy8Xx7Ww6Vv5Uu4")
    for name, value in ROTATED.items():
        a.provider_keys.RotateProviderKey(
            pk.RotateProviderKeyRequest(id=keys[name].id, value=value), metadata=md
        )
    a.provider_keys.UpdateProviderKey(
        pk.UpdateProviderKeyRequest(
            provider_key=pk.ProviderKey(id=keys["openai"].id, description="rotated once"),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=md,
    )
    for key in keys.values():
        a.provider_keys.GetProviderKey(pk.GetProviderKeyRequest(id=key.id), metadata=md)
    a.provider_keys.ListProviderKeys(pk.ListProviderKeysRequest(page_size=2), metadata=md)
    config = a.configuration(
        {"name": "c", "router": router(rule("openai", keys["openai"].id, keys["short"].id))}
    )
    access, access_token = a.access_key("app", config.id)
    admin = a.admin_keys.CreateAdminApiKey(
        adk.CreateAdminApiKeyRequest(admin_api_key=adk.AdminApiKey(name="ci")), metadata=md
    )
    a.access_keys.GetAccessKey(ak.GetAccessKeyRequest(id=access.id), metadata=md)
    a.access_keys.ListAccessKeys(ak.ListAccessKeysRequest(), metadata=md)
    a.admin_keys.ListAdminApiKeys(adk.ListAdminApiKeysRequest(), metadata=md)
    a.configurations.ListAccessKeyConfigurations(
        cfg.ListAccessKeyConfigurationsRequest(), metadata=md
    )
    a.providers.ListProviders(prov.ListProvidersRequest(), metadata=md)
    a.accounts.GetAccount(acc.GetAccountRequest(), metadata=md)

    def create(
        value: str, provider: str = "openai", name: str = "k", metadata: Metadata = md
    ) -> Callable[[], object]:
        request = pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(provider_id=provider, name=name), value=value
        )
        return lambda: a.provider_keys.CreateProviderKey(request, metadata=metadata)

    def rotate(key_id: str, value: str, name: str = "", etag: str = "") -> Callable[[], object]:
        request = pk.RotateProviderKeyRequest(id=key_id, value=value, name=name, etag=etag)
        return lambda: a.provider_keys.RotateProviderKey(request, metadata=md)

    # Refused requests carrying a value next to another problem.
    for call in (
        create(REFUSED["long name"], name="n" * 256),
        create(REFUSED["unknown provider"], provider="no-such-provider"),
        create(REFUSED["newline"] + "\n"),
        create(REFUSED["nul"][:20] + "\x00" + REFUSED["nul"][20:]),
        create(REFUSED["too long"]),
        create(REFUSED["operator"], metadata=op.md),
        create(REFUSED["unauthenticated"], metadata=auth("kwadm_not-a-real-token")),
        rotate(keys["openai"].id, REFUSED["rotate long name"], name="n" * 256),
        rotate("pk_aaaaaaaaaaaaaaaa", REFUSED["rotate unknown id"]),
        rotate(keys["openai"].id, REFUSED["rotate stale etag"], etag=keys["openai"].etag),
        rotate(foreign.id, REFUSED["rotate foreign key"]),
        lambda: a.provider_keys.DeleteProviderKey(
            pk.DeleteProviderKeyRequest(id=keys["openai"].id), metadata=md
        ),
    ):
        _expect_failure(call)

    # Re-wrapping every data key under a new master key touches every sealed value.
    rotated = op.master_keys.RotateMasterKey(mk.RotateMasterKeyRequest(), metadata=op.md)
    assert rotated.rewrapped == 5
    return {"access": access_token, "admin": admin.token}


def test_secrets_never_leak(
    debug_logs: pytest.LogCaptureFixture, control_plane: RunningControlPlane
) -> None:
    recorder = Recorder()
    channel = grpc.intercept_channel(control_plane.channel, recorder)
    a = Api(channel, control_plane.admin)
    op = Api(channel, control_plane.operator)
    _, token_b = op.new_account(op.md, "Tenant B")
    b = Api(channel, auth(token_b))
    minted = exercise_everything(control_plane, a, op, b)

    store = control_plane.server.store
    stored = {
        store.get(PROVIDER_KEYS, key_id, None).fields.name: store.reveal(key_id).reveal()
        for key_id in provider_key_ids(control_plane.data_dir)
    }
    # The values really are stored (so the searches below look for something real).
    assert stored["primary"] == ROTATED["openai"]
    assert stored["acme"] == ROTATED["custom"]
    assert stored["claude"] == VALUES["anthropic"]
    assert stored["short"] == VALUES["short"]

    provider_values = [*VALUES.values(), *ROTATED.values(), *REFUSED.values()]
    assert recorder.calls > 30
    responses = b"\n".join(recorder.blobs)
    assert leaks(responses, provider_values) == []
    # Tokens show up exactly where they are meant to: their own create response.
    for token in minted.values():
        assert (
            len([blob for blob in recorder.blobs if token.encode() in blob]) == 3
        )  # bytes, text, json

    logs = all_log_text(debug_logs)
    assert b"control plane listening" in logs  # the capture really saw the server
    tokens = [
        *minted.values(),
        token_b,
        control_plane.admin_token,
        control_plane.operator_token,
        (control_plane.data_dir / "data-plane.token").read_text().strip(),
    ]
    assert leaks(logs, provider_values + tokens) == []

    # On disk: database (with its WAL), keyring, anything else in the data directory,
    # except the bootstrap token files that exist to hand those tokens over.
    token_files = ("operator.token", "admin.token", "data-plane.token")
    disk = disk_bytes(control_plane.data_dir, skip=token_files)
    assert (control_plane.data_dir / "keyway.db").stat().st_size > 0
    assert leaks(disk, provider_values + tokens) == []


def test_redacted_forms_are_all_that_is_stored(control_plane: RunningControlPlane) -> None:
    """The database holds the redacted form (so the API can show it) and nothing more."""
    a = Api(control_plane.channel, control_plane.admin)
    key = a.provider_key("openai", VALUES["openai"], "primary")
    _, token = a.access_key("app")
    disk = database_bytes(control_plane.data_dir)
    assert key.redacted_value.encode() in disk
    assert VALUES["openai"][:10].encode() in disk  # the visible prefix, by design
    for secret in (VALUES["openai"], token):
        hidden = secret[10:-4]
        assert not any(w.encode() in disk for w in windows(hidden, 8))
