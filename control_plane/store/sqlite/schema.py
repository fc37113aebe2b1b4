"""Schema migrations. Append new migrations; never edit an applied one."""

from __future__ import annotations

import secrets

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

from control_plane.store.relational.footprint import account_bytes_sql
from control_plane.store.relational.session import Dialect

SQLITE = Dialect("sqlite", byte_length="length(CAST({} AS BLOB))")

MIGRATIONS = Migrations("keyway")

_COMMON = """
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '',
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL,
    etag TEXT NOT NULL
"""


@MIGRATIONS(name="0001_initial")
def _initial(db: Database) -> None:
    db.execute(
        "CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value INTEGER NOT NULL)"
    )
    db.execute("INSERT INTO revision (id, value) VALUES (1, 0)")
    db.execute(f"CREATE TABLE accounts ({_COMMON})")
    db.execute(
        f"""CREATE TABLE credentials ({_COMMON},
            kind TEXT NOT NULL CHECK (kind IN ('operator', 'admin', 'data_plane')),
            account_id TEXT REFERENCES accounts(id),
            token_hash TEXT NOT NULL UNIQUE,
            redacted_token TEXT NOT NULL)"""
    )
    db.execute(
        f"""CREATE TABLE provider_keys ({_COMMON},
            account_id TEXT NOT NULL REFERENCES accounts(id),
            provider_id TEXT NOT NULL,
            redacted_value TEXT NOT NULL,
            kek_id TEXT NOT NULL,
            wrapped_key BLOB NOT NULL,
            ciphertext BLOB NOT NULL,
            secret_version INTEGER NOT NULL,
            rotate_time INTEGER NOT NULL,
            last_used_time INTEGER,
            last_error_status INTEGER,
            last_error_reason TEXT,
            last_error_time INTEGER)"""
    )
    db.execute("CREATE INDEX provider_keys_account ON provider_keys (account_id, provider_id)")
    db.execute(
        f"""CREATE TABLE configurations ({_COMMON},
            account_id TEXT NOT NULL REFERENCES accounts(id),
            access_json TEXT,
            router_json TEXT NOT NULL)"""
    )
    db.execute("CREATE INDEX configurations_account ON configurations (account_id)")
    db.execute(
        f"""CREATE TABLE access_keys ({_COMMON},
            account_id TEXT NOT NULL REFERENCES accounts(id),
            token_hash TEXT NOT NULL UNIQUE,
            redacted_token TEXT NOT NULL,
            configuration_id TEXT REFERENCES configurations(id),
            last_used_time INTEGER)"""
    )
    db.execute("CREATE INDEX access_keys_account ON access_keys (account_id, configuration_id)")
    db.execute(
        f"""CREATE TABLE custom_providers ({_COMMON},
            account_id TEXT NOT NULL REFERENCES accounts(id),
            provider_id TEXT NOT NULL,
            base_url TEXT NOT NULL,
            formats_json TEXT NOT NULL,
            auth_style INTEGER NOT NULL,
            models_json TEXT NOT NULL,
            UNIQUE (account_id, provider_id))"""
    )


@MIGRATIONS(name="0002_data_planes")
def _data_planes(db: Database) -> None:
    # Bookkeeping, not routing data: written without bumping the revision.
    db.execute(
        """CREATE TABLE data_planes (
            node_id TEXT PRIMARY KEY,
            pool TEXT NOT NULL,
            build_version TEXT NOT NULL,
            connected INTEGER NOT NULL,
            connect_time INTEGER NOT NULL,
            last_seen_time INTEGER NOT NULL,
            sent_version INTEGER NOT NULL DEFAULT 0,
            applied_version INTEGER NOT NULL DEFAULT 0,
            applied_hash TEXT NOT NULL DEFAULT '',
            rejected_version INTEGER,
            rejected_message TEXT,
            rejected_time INTEGER)"""
    )


@MIGRATIONS(name="0003_data_plane_rejected_hash")
def _rejected_hash(db: Database) -> None:
    # Without the hash a restarted control plane cannot tell that a proxy
    # already refused exactly the snapshot it is about to offer.
    db.execute("ALTER TABLE data_planes ADD COLUMN rejected_hash TEXT NOT NULL DEFAULT ''")


@MIGRATIONS(name="0004_provider_key_last_success")
def _last_success(db: Database) -> None:
    # A last error is only news while no success came after it.
    db.execute("ALTER TABLE provider_keys ADD COLUMN last_success_time INTEGER")


@MIGRATIONS(name="0005_disabled_keys")
def _disabled_keys(db: Database) -> None:
    # Paused, not deleted: proxies skip a disabled provider key and refuse a disabled access key.
    for table in ("provider_keys", "access_keys"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0")


@MIGRATIONS(name="0005b_configuration_limits")
def _configuration_limits(db: Database) -> None:
    # NULL: no per-access-key limits (rows written before limits existed have none). Placed
    # before 0007, whose snapshot estimate (footprint.account_bytes_sql) reads the column.
    db.execute("ALTER TABLE configurations ADD COLUMN limits_json TEXT")


@MIGRATIONS(name="0006_provider_key_owner_aad")
def _owner_aad(db: Database) -> None:
    # Rows sealed before the owner was bound keep version 1 until the background
    # re-seal (`relational.sealed_rows.SealedRows.reseal_legacy`) moves them to 2.
    db.execute("ALTER TABLE provider_keys ADD COLUMN aad_version INTEGER NOT NULL DEFAULT 1")


@MIGRATIONS(name="0007_account_snapshot_accounting")
def _account_accounting(db: Database) -> None:
    # data_revision: the revision of the last write to the account's routing data, so
    # the snapshot is recompiled for changed accounts only. snapshot_bytes: its share
    # of the snapshot, kept current by every write (quotas check the sum).
    db.execute("ALTER TABLE accounts ADD COLUMN data_revision INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE accounts ADD COLUMN snapshot_bytes INTEGER NOT NULL DEFAULT 0")
    estimate = account_bytes_sql(SQLITE, "accounts.id")
    db.execute(f"UPDATE accounts SET snapshot_bytes = ({estimate})")  # noqa: S608 - constant


@MIGRATIONS(name="0008_deployment_meta")
def _meta(db: Database) -> None:
    # Deployment-wide values every replica shares; `label_salt` keys the opaque proxy
    # labels account admins see instead of node ids.
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta (key, value) VALUES ('label_salt', ?)", [secrets.token_hex(32)])


@MIGRATIONS(name="0009_data_plane_replica")
def _data_plane_replica(db: Database) -> None:
    # Which control plane holds a proxy's stream (replicas of a shared database).
    db.execute("ALTER TABLE data_planes ADD COLUMN control_plane TEXT NOT NULL DEFAULT ''")


@MIGRATIONS(name="0010_usage")
def _usage(db: Database) -> None:
    # Bookkeeping like data_planes: proxies' attempt records never move the revision.
    # usage_batches makes a retried batch a no-op; usage_hourly holds the sums queries read.
    db.execute(
        """CREATE TABLE usage_batches (
            batch_id TEXT PRIMARY KEY,
            node_id TEXT NOT NULL,
            received_time INTEGER NOT NULL)"""
    )
    db.execute("CREATE INDEX usage_batches_time ON usage_batches (received_time)")
    db.execute(
        """CREATE TABLE usage_attempts (
            request_id TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            time INTEGER NOT NULL,
            node_id TEXT NOT NULL,
            account_id TEXT NOT NULL,
            access_key_id TEXT NOT NULL,
            configuration_id TEXT NOT NULL,
            surface TEXT NOT NULL,
            requested_model TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            upstream_model TEXT NOT NULL,
            provider_key_id TEXT NOT NULL,
            outcome TEXT NOT NULL,
            reason TEXT NOT NULL,
            status INTEGER NOT NULL,
            headers_ms REAL NOT NULL,
            first_byte_ms REAL NOT NULL,
            duration_ms REAL NOT NULL,
            input_tokens INTEGER,
            output_tokens INTEGER,
            cached_tokens INTEGER,
            reasoning_tokens INTEGER,
            cost_nanos INTEGER,
            final INTEGER NOT NULL,
            PRIMARY KEY (request_id, attempt))"""
    )
    db.execute("CREATE INDEX usage_attempts_time ON usage_attempts (time)")
    db.execute(
        """CREATE TABLE usage_hourly (
            hour INTEGER NOT NULL,
            account_id TEXT NOT NULL,
            access_key_id TEXT NOT NULL,
            provider_key_id TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            model TEXT NOT NULL,
            outcome TEXT NOT NULL,
            requests INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            failovers INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cached_tokens INTEGER NOT NULL,
            reasoning_tokens INTEGER NOT NULL,
            cost_nanos INTEGER NOT NULL,
            unpriced_attempts INTEGER NOT NULL,
            PRIMARY KEY (hour, account_id, access_key_id, provider_key_id, provider_id, model,
                         outcome))"""
    )
    db.execute("CREATE INDEX usage_hourly_account ON usage_hourly (account_id, hour)")
