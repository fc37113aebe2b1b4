"""PostgreSQL schema migrations: applied in order, each once, under an advisory lock.

The tables match the SQLite schema after all of its migrations (the shared SQL reads
and writes both alike): BIGINT where SQLite's INTEGER holds microseconds or revisions,
BYTEA for sealed values, an identity column for `seq`. Append new migrations; never edit
an applied one. Both adapters gain a migration when a table changes.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

import psycopg

from control_plane.store.relational.session import Dialect

POSTGRES = Dialect("postgresql", byte_length="octet_length({})")

_COMMON = """
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    metadata TEXT NOT NULL DEFAULT '',
    create_time BIGINT NOT NULL,
    update_time BIGINT NOT NULL,
    etag TEXT NOT NULL
"""

_INITIAL = (
    "CREATE TABLE revision (id INTEGER PRIMARY KEY CHECK (id = 1), value BIGINT NOT NULL)",
    "INSERT INTO revision (id, value) VALUES (1, 0)",
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    f"""CREATE TABLE accounts ({_COMMON},
        data_revision BIGINT NOT NULL DEFAULT 0,
        snapshot_bytes BIGINT NOT NULL DEFAULT 0)""",
    f"""CREATE TABLE credentials ({_COMMON},
        kind TEXT NOT NULL CHECK (kind IN ('operator', 'admin', 'data_plane')),
        account_id TEXT REFERENCES accounts(id),
        token_hash TEXT NOT NULL UNIQUE,
        redacted_token TEXT NOT NULL)""",
    f"""CREATE TABLE provider_keys ({_COMMON},
        account_id TEXT NOT NULL REFERENCES accounts(id),
        provider_id TEXT NOT NULL,
        redacted_value TEXT NOT NULL,
        kek_id TEXT NOT NULL,
        wrapped_key BYTEA NOT NULL,
        ciphertext BYTEA NOT NULL,
        secret_version BIGINT NOT NULL,
        rotate_time BIGINT NOT NULL,
        last_used_time BIGINT,
        last_error_status INTEGER,
        last_error_reason TEXT,
        last_error_time BIGINT,
        last_success_time BIGINT,
        disabled INTEGER NOT NULL DEFAULT 0,
        aad_version INTEGER NOT NULL DEFAULT 1)""",
    "CREATE INDEX provider_keys_account ON provider_keys (account_id, provider_id)",
    "CREATE INDEX provider_keys_kek ON provider_keys (kek_id)",
    f"""CREATE TABLE configurations ({_COMMON},
        account_id TEXT NOT NULL REFERENCES accounts(id),
        access_json TEXT,
        router_json TEXT NOT NULL,
        limits_json TEXT)""",
    "CREATE INDEX configurations_account ON configurations (account_id)",
    f"""CREATE TABLE access_keys ({_COMMON},
        account_id TEXT NOT NULL REFERENCES accounts(id),
        token_hash TEXT NOT NULL UNIQUE,
        redacted_token TEXT NOT NULL,
        configuration_id TEXT REFERENCES configurations(id),
        last_used_time BIGINT,
        disabled INTEGER NOT NULL DEFAULT 0)""",
    "CREATE INDEX access_keys_account ON access_keys (account_id, configuration_id)",
    "CREATE INDEX access_keys_configuration ON access_keys (configuration_id)",
    f"""CREATE TABLE custom_providers ({_COMMON},
        account_id TEXT NOT NULL REFERENCES accounts(id),
        provider_id TEXT NOT NULL,
        base_url TEXT NOT NULL,
        formats_json TEXT NOT NULL,
        auth_style INTEGER NOT NULL,
        models_json TEXT NOT NULL,
        UNIQUE (account_id, provider_id))""",
    # Bookkeeping, not routing data: written without bumping the revision.
    """CREATE TABLE data_planes (
        node_id TEXT PRIMARY KEY,
        pool TEXT NOT NULL,
        build_version TEXT NOT NULL,
        connected INTEGER NOT NULL,
        connect_time BIGINT NOT NULL,
        last_seen_time BIGINT NOT NULL,
        sent_version BIGINT NOT NULL DEFAULT 0,
        applied_version BIGINT NOT NULL DEFAULT 0,
        applied_hash TEXT NOT NULL DEFAULT '',
        rejected_version BIGINT,
        rejected_message TEXT,
        rejected_time BIGINT,
        rejected_hash TEXT NOT NULL DEFAULT '',
        control_plane TEXT NOT NULL DEFAULT '')""",
)


def _initial(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    for statement in _INITIAL:
        conn.execute(statement)
    # Deployment-wide values every replica shares; `label_salt` keys the opaque proxy
    # labels account admins see instead of node ids.
    conn.execute("INSERT INTO meta (key, value) VALUES ('label_salt', %s)", [secrets.token_hex(32)])


_USAGE = (
    # Bookkeeping like data_planes: proxies' attempt records never move the revision.
    """CREATE TABLE usage_batches (
            batch_id TEXT PRIMARY KEY,
            node_id TEXT NOT NULL,
            received_time BIGINT NOT NULL)""",
    "CREATE INDEX usage_batches_time ON usage_batches (received_time)",
    """CREATE TABLE usage_attempts (
            request_id TEXT NOT NULL,
            attempt BIGINT NOT NULL,
            time BIGINT NOT NULL,
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
            status BIGINT NOT NULL,
            headers_ms DOUBLE PRECISION NOT NULL,
            first_byte_ms DOUBLE PRECISION NOT NULL,
            duration_ms DOUBLE PRECISION NOT NULL,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cached_tokens BIGINT,
            reasoning_tokens BIGINT,
            cost_nanos BIGINT,
            final BIGINT NOT NULL,
            PRIMARY KEY (request_id, attempt))""",
    "CREATE INDEX usage_attempts_time ON usage_attempts (time)",
    """CREATE TABLE usage_hourly (
            hour BIGINT NOT NULL,
            account_id TEXT NOT NULL,
            access_key_id TEXT NOT NULL,
            provider_key_id TEXT NOT NULL,
            provider_id TEXT NOT NULL,
            model TEXT NOT NULL,
            outcome TEXT NOT NULL,
            requests BIGINT NOT NULL,
            attempts BIGINT NOT NULL,
            failovers BIGINT NOT NULL,
            input_tokens BIGINT NOT NULL,
            output_tokens BIGINT NOT NULL,
            cached_tokens BIGINT NOT NULL,
            reasoning_tokens BIGINT NOT NULL,
            cost_nanos BIGINT NOT NULL,
            unpriced_attempts BIGINT NOT NULL,
            PRIMARY KEY (hour, account_id, access_key_id, provider_key_id, provider_id, model,
                         outcome))""",
    "CREATE INDEX usage_hourly_account ON usage_hourly (account_id, hour)",
)


def _usage(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    for statement in _USAGE:
        conn.execute(statement)


MIGRATIONS: tuple[tuple[str, Callable[[psycopg.Connection[tuple[object, ...]]], None]], ...] = (
    ("0001_initial", _initial),
    ("0002_usage", _usage),
)


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[str]:
    """Applies what is missing, in one transaction; returns the names applied.

    Replicas starting together queue on the lock (one per schema): the first applies,
    the others find everything applied.
    """
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('keyway.migrate.' || current_schema()))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS keyway_migrations "
            "(name TEXT PRIMARY KEY, applied_time TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT name FROM keyway_migrations")}
        applied = []
        for name, apply in MIGRATIONS:
            if name in done:
                continue
            apply(conn)
            conn.execute("INSERT INTO keyway_migrations (name) VALUES (%s)", [name])
            applied.append(name)
    return applied
