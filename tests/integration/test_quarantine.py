"""One account whose data cannot compile never stops snapshots for the others.

Such an account is quarantined: every other account keeps publishing, the quarantined
one keeps its last good data on the proxies (minus revoked access keys), and its admins
see why through the admin API and the CLI until a write fixes it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf import field_mask_pb2
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import providers_pb2 as prov

from control_plane.domain.quotas import Quotas
from control_plane.server import Settings
from data_plane.routing.apply import Applied, apply
from data_plane.routing.table import RoutingTable

from .cli_runner import ok, runner
from .control_planes import RunningControlPlane
from .proxies import caught_up, store_revision, token_sha256, wait_until
from .rpc_helpers import OPENAI_VALUE, OPENAI_VALUE_2, Api, auth, running

OTHER_VALUE = "sk-proj-Ux4Bn8Mq2Lz6Wk0Rc3Vy7Hd1Pe5Ta9Gs"

QUARANTINED = acc.ACCOUNT_SNAPSHOT_STATE_QUARANTINED
PUBLISHED = acc.ACCOUNT_SNAPSHOT_STATE_PUBLISHED


@dataclass
class Tenants:
    cp: RunningControlPlane
    a: Api
    b: Api
    b_id: str
    b_token: str
    b_key: pk.ProviderKey
    b_access: dict[str, str]
    """access key id -> token"""


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    with running(Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data")) as cp:
        yield _tenants(cp)


def _tenants(cp: RunningControlPlane) -> Tenants:
    a = Api(cp.channel, cp.admin)
    op = Api(cp.channel, cp.operator)
    account_b, token_b = op.new_account(op.md, "Tenant B")
    b = Api(cp.channel, auth(token_b))
    b_key = b.provider_key("openai", OPENAI_VALUE_2)
    b.custom_provider("x-bcorp")
    access = {key.id: token for key, token in (b.access_key(f"b-{i}") for i in range(2))}
    a.provider_key("openai", OPENAI_VALUE)
    caught_up(cp)
    return Tenants(cp, a, b, account_b.id, token_b, b_key, access)


def database(cp: RunningControlPlane) -> sqlite3.Connection:
    return sqlite3.connect(cp.data_dir / "keyway.db")


def table(cp: RunningControlPlane) -> RoutingTable:
    """What a proxy would serve from the latest snapshot (it must apply)."""
    published = caught_up(cp)
    result = apply(
        published.compiled.version, published.compiled.sha256, published.compiled.payload
    )
    assert isinstance(result, Applied), result
    return result.table


def status(api: Api) -> acc.AccountSnapshotStatus:
    return api.accounts.GetAccount(acc.GetAccountRequest(), metadata=api.md).account.snapshot_status


def touch(conn: sqlite3.Connection, *account_ids: str) -> None:
    """What the write path does and a hand edit does not: mark accounts for recompiling."""
    for account_id in account_ids:
        conn.execute(
            "UPDATE accounts SET data_revision = data_revision + 1 WHERE id = ?", [account_id]
        )
    conn.execute("UPDATE revision SET value = value + 1")


def spoil(cp: RunningControlPlane, account_id: str) -> None:
    """What an older release, a bug or a hand edit can leave behind: a custom provider
    whose base URL the validator refuses."""
    with closing(database(cp)) as conn, conn:
        conn.execute(
            "UPDATE custom_providers SET base_url = 'not a url' WHERE account_id = ?",
            [account_id],
        )
        touch(conn, account_id)
    cp.server.publisher.notify(store_revision(cp.data_dir))


def test_a_spoiled_account_is_quarantined_and_the_others_keep_publishing(
    tenants: Tenants,
) -> None:
    cp, a, b = tenants.cp, tenants.a, tenants.b
    spoil(cp, tenants.b_id)
    wait_until(lambda: status(b).state == QUARANTINED, what="B quarantined")

    # Tenant A is not held up: its new key reaches the proxies.
    added = a.provider_key("openai", OTHER_VALUE, "after")
    served = table(cp)
    a_account = next(x for x in served.accounts.values() if added.id in x.keys)
    assert a_account.keys[added.id].value == OTHER_VALUE
    # B keeps its last good data: its key, its access keys.
    b_account = served.accounts[tenants.b_id]
    assert b_account.keys[tenants.b_key.id].provider_id == "openai"
    assert {token_sha256(t) for t in tenants.b_access.values()} <= set(served.callers)

    # B's admins see why.
    seen = status(b)
    assert "does not validate" in seen.reason
    assert [p.field for p in seen.problems] == ["account.custom_providers[0].base_url"]
    assert "not an absolute http(s) URL" in seen.problems[0].description
    assert seen.serving_previous
    assert seen.quarantined_version > 0
    assert status(a).state == PUBLISHED
    assert OPENAI_VALUE_2 not in seen.reason


def test_revoking_an_access_key_of_a_quarantined_account_still_propagates(
    tenants: Tenants,
) -> None:
    cp, b = tenants.cp, tenants.b
    spoil(cp, tenants.b_id)
    wait_until(lambda: status(b).state == QUARANTINED, what="B quarantined")
    revoked, kept = list(tenants.b_access.items())

    b.access_keys.DeleteAccessKey(ak.DeleteAccessKeyRequest(id=revoked[0]), metadata=b.md)
    served = table(cp)
    assert token_sha256(revoked[1]) not in served.callers
    assert token_sha256(kept[1]) in served.callers
    assert status(b).state == QUARANTINED


def test_disabling_an_access_key_of_a_quarantined_account_still_propagates(
    tenants: Tenants,
) -> None:
    cp, b = tenants.cp, tenants.b
    spoil(cp, tenants.b_id)
    wait_until(lambda: status(b).state == QUARANTINED, what="B quarantined")
    paused, kept = list(tenants.b_access.items())
    b.access_keys.UpdateAccessKey(
        ak.UpdateAccessKeyRequest(
            access_key=ak.AccessKey(id=paused[0], disabled=True),
            update_mask=field_mask_pb2.FieldMask(paths=["disabled"]),
        ),
        metadata=b.md,
    )
    served = table(cp)
    assert token_sha256(paused[1]) not in served.callers
    assert token_sha256(kept[1]) in served.callers


def test_a_write_that_fixes_the_account_lifts_the_quarantine(tenants: Tenants) -> None:
    cp, b = tenants.cp, tenants.b
    spoil(cp, tenants.b_id)
    wait_until(lambda: status(b).state == QUARANTINED, what="B quarantined")
    [custom] = b.providers.ListCustomProviders(
        prov.ListCustomProvidersRequest(), metadata=b.md
    ).custom_providers
    fixed = prov.CustomProvider(id=custom.id, base_url="https://llm.bcorp.example/v1")
    b.providers.UpdateCustomProvider(
        prov.UpdateCustomProviderRequest(
            custom_provider=fixed, update_mask=field_mask_pb2.FieldMask(paths=["base_url"])
        ),
        metadata=b.md,
    )
    wait_until(lambda: status(b).state == PUBLISHED, what="B published again")
    served = table(cp).accounts[tenants.b_id].providers["x-bcorp"]
    assert served.base_url == "https://llm.bcorp.example/v1"
    assert status(b).reason == ""


def test_the_cli_shows_the_quarantine(tenants: Tenants, capsys: pytest.CaptureFixture[str]) -> None:
    spoil(tenants.cp, tenants.b_id)
    wait_until(lambda: status(tenants.b).state == QUARANTINED, what="B quarantined")
    cli = runner(tenants.cp, capsys, tenants.b_token)
    shown = ok(cli("accounts", "get")).out
    assert "QUARANTINED since snapshot" in shown
    assert "account.custom_providers[0].base_url: is not an absolute http(s) URL" in shown
    assert "proxies keep serving its last good data" in shown
    listing = ok(cli("accounts", "list", token=tenants.cp.operator_token)).out
    assert any(tenants.b_id in line and "QUARANTINED" in line for line in listing.splitlines())


def test_a_sealed_key_moved_to_another_account_is_never_used_for_it(tenants: Tenants) -> None:
    """The sealed value is bound to its owner: moving the row makes it unreadable for the
    new owner instead of sending tenant A's key upstream for tenant B's requests."""
    cp, a = tenants.cp, tenants.a
    stolen = a.provider_key("openai", OTHER_VALUE, "victim")
    a_id = a.accounts.GetAccount(acc.GetAccountRequest(), metadata=a.md).account.id
    caught_up(cp)
    with closing(database(cp)) as conn, conn:
        conn.execute(
            "UPDATE provider_keys SET account_id = ? WHERE id = ?", [tenants.b_id, stolen.id]
        )
        touch(conn, tenants.b_id, a_id)
    cp.server.publisher.notify(store_revision(cp.data_dir))
    wait_until(lambda: status(tenants.b).state == QUARANTINED, what="B quarantined")
    assert stolen.id in status(tenants.b).reason
    assert "sealed for another account" in status(tenants.b).reason
    assert OTHER_VALUE.encode() not in caught_up(cp).compiled.payload
    assert stolen.id not in table(cp).accounts[tenants.b_id].keys


def test_after_a_restart_a_broken_account_serves_nothing_but_says_why(tmp_path: Path) -> None:
    settings = Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data")
    with running(settings) as cp:
        t = _tenants(cp)
        spoil(cp, t.b_id)
    with running(settings) as cp:
        b = Api(cp.channel, auth(t.b_token))
        seen = wait_until(lambda: status(b) if status(b).state == QUARANTINED else None)
        assert not seen.serving_previous
        served = table(cp)
        assert t.b_id not in served.accounts
        assert not {token_sha256(x) for x in t.b_access.values()} & set(served.callers)
        assert len(served.accounts) == 1  # tenant A is served


def test_an_account_over_the_size_budget_is_quarantined_at_compile_time(tmp_path: Path) -> None:
    """The write-time budget keeps accounts under it; data that is over anyway (a budget
    lowered by the operator) is held back rather than sent to every proxy."""
    data_dir = tmp_path / "data"
    with running(Settings(listen="127.0.0.1:0", data_dir=data_dir)) as cp:
        t = _tenants(cp)
        t.b.providers.CreateCustomProvider(
            prov.CreateCustomProviderRequest(
                custom_provider=prov.CustomProvider(
                    provider_id="x-big",
                    name="big",
                    base_url="https://big.example/v1",
                    formats=[prov.API_FORMAT_OPENAI],
                    models=[prov.ProviderModel(id=f"model-{i:03d}" * 8) for i in range(200)],
                )
            ),
            metadata=t.b.md,
        )
    small = Settings(
        listen="127.0.0.1:0", data_dir=data_dir, quotas=Quotas(account_snapshot_bytes=8_000)
    )
    with running(small) as cp:
        b = Api(cp.channel, auth(t.b_token))
        seen = wait_until(lambda: status(b) if status(b).state == QUARANTINED else None)
        assert "over the per-account budget of 8000" in seen.reason
        assert "--max-account-snapshot-bytes" in seen.reason
        assert status(Api(cp.channel, cp.admin)).state == PUBLISHED


def test_a_legacy_custom_id_that_a_catalog_release_took_keeps_working(tenants: Tenants) -> None:
    """Before the `x-` namespace a tenant could name a custom provider `cerebras`; when a
    later catalog defines `cerebras` too, that account keeps its own provider (inside the
    account it takes precedence) and nobody's snapshot stops. `groq` plays the new
    catalog entry here."""
    cp, a = tenants.cp, tenants.a
    with closing(database(cp)) as conn, conn:
        conn.execute(
            "UPDATE custom_providers SET provider_id = 'groq', base_url = ? WHERE account_id = ?",
            ["https://groq-in-house.bcorp.example/v1", tenants.b_id],
        )
        touch(conn, tenants.b_id)
    cp.server.publisher.notify(store_revision(cp.data_dir))
    added = a.provider_key("groq", "gsk_" + "Mn3Bv7Cx1Za5" * 3, "a's groq")
    served = table(cp)
    assert served.accounts[tenants.b_id].providers["groq"].base_url == (
        "https://groq-in-house.bcorp.example/v1"
    )
    a_account = next(x for x in served.accounts.values() if added.id in x.keys)
    assert a_account.providers["groq"].base_url == "https://api.groq.com/openai/v1"
    assert status(tenants.b).state == PUBLISHED
