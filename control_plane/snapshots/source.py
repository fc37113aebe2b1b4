"""Reads the whole store at one revision, for the compiler.

Runs on a worker thread with its own read-only connection: in WAL mode one
read transaction sees a consistent state while the admin API keeps writing.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

from keyway.v1 import providers_pb2 as ppb
from keyway.v1.access_key_configurations_pb2 import AccessKeyConfiguration

from control_plane.domain import catalog
from control_plane.domain.upstreams import effective_auth_style
from control_plane.secrets.sealing import SealedSecret, Sealer
from control_plane.secrets.secret import Secret
from control_plane.store.codec import config_from_columns
from control_plane.store.sealed_rows import key_aad

from .compiler import AccessKeyRecord, AccountRecord, KeyRecord, StoreState

_FORMAT_NAMES = {
    ppb.API_FORMAT_OPENAI: catalog.FORMAT_OPENAI,
    ppb.API_FORMAT_ANTHROPIC: catalog.FORMAT_ANTHROPIC,
}


_AUTH_NAMES: dict[int, str] = {
    ppb.AUTH_STYLE_BEARER: catalog.AUTH_BEARER,
    ppb.AUTH_STYLE_X_API_KEY: catalog.AUTH_X_API_KEY,
}


def _auth_name(style: int, formats: list[int]) -> str:
    stored = ppb.CustomProvider(
        auth_style=ppb.AuthStyle.ValueType(style),
        formats=[ppb.ApiFormat.ValueType(f) for f in formats],
    )
    return _AUTH_NAMES[effective_auth_style(stored)]


class StateReader:
    def __init__(
        self,
        path: Path,
        sealer: Sealer,
        overrides: Mapping[str, str],
        allow_private_upstreams: bool = False,
    ) -> None:
        self._conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, check_same_thread=False, isolation_level=None
        )
        self._sealer = sealer
        self._overrides = dict(overrides)
        self._allow_private = allow_private_upstreams
        # Unchanged rows are not decrypted or parsed again on the next compile:
        # the etag moves on every configuration write, the secret version on
        # every rotation. Plaintexts here are the ones the last snapshot holds.
        self._secrets: dict[str, tuple[int, Secret]] = {}
        self._configs: dict[str, tuple[str, AccessKeyConfiguration]] = {}
        # Reads run on worker threads and may still be running when the
        # control plane stops: closing the connection under a running query
        # crashes the process, so every use of it holds this lock.
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def revision(self) -> int:
        with self._lock:
            return self._revision()

    def _revision(self) -> int:
        return int(self._conn.execute("SELECT value FROM revision WHERE id = 1").fetchone()[0])

    def read(self) -> StoreState:
        with self._lock:
            return self._read()

    def _read(self) -> StoreState:
        c = self._conn
        c.execute("BEGIN")
        try:
            revision = self._revision()
            customs: dict[str, list[catalog.ProviderSpec]] = defaultdict(list)
            for (
                account_id,
                provider_id,
                name,
                base_url,
                formats_json,
                auth,
                models_json,
            ) in c.execute(
                "SELECT account_id, provider_id, name, base_url, formats_json, auth_style, "
                "models_json FROM custom_providers ORDER BY seq"
            ):
                formats = json.loads(formats_json)
                customs[account_id].append(
                    catalog.ProviderSpec(
                        id=provider_id,
                        name=name,
                        base_url=base_url,
                        formats=tuple(_FORMAT_NAMES[f] for f in formats),
                        auth_style=_auth_name(auth, formats),
                        models=tuple(catalog.Model(i, u) for i, u in json.loads(models_json)),
                        built_in=False,
                    )
                )
            keys: dict[str, list[KeyRecord]] = defaultdict(list)
            secrets: dict[str, tuple[int, Secret]] = {}
            for (
                account_id,
                key_id,
                provider_id,
                kek,
                wrapped,
                ciphertext,
                version,
                aad_version,
            ) in c.execute(
                "SELECT account_id, id, provider_id, kek_id, wrapped_key, ciphertext, "
                "secret_version, aad_version FROM provider_keys ORDER BY seq"
            ):
                cached = self._secrets.get(key_id)
                if cached is not None and cached[0] == version:
                    value = cached[1]
                else:
                    aad = key_aad(account_id, provider_id, key_id, version, aad_version)
                    value = self._sealer.open(SealedSecret(kek, wrapped, ciphertext), aad)
                secrets[key_id] = (version, value)
                keys[account_id].append(KeyRecord(key_id, provider_id, value))
            self._secrets = secrets
            configs: dict[str, list[tuple[str, AccessKeyConfiguration]]] = defaultdict(list)
            parsed: dict[str, tuple[str, AccessKeyConfiguration]] = {}
            for account_id, config_id, etag, access_json, router_json in c.execute(
                "SELECT account_id, id, etag, access_json, router_json FROM configurations"
            ):
                hit = self._configs.get(config_id)
                if hit is not None and hit[0] == etag:
                    config = hit[1]
                else:
                    config = config_from_columns(access_json, router_json)
                parsed[config_id] = (etag, config)
                configs[account_id].append((config_id, config))
            self._configs = parsed
            access: dict[str, list[AccessKeyRecord]] = defaultdict(list)
            for account_id, key_id, token_hash, config_id in c.execute(
                "SELECT account_id, id, token_hash, configuration_id FROM access_keys"
            ):
                access[account_id].append(AccessKeyRecord(key_id, token_hash, config_id))
            accounts = tuple(
                AccountRecord(
                    id=account_id,
                    custom_providers=tuple(customs[account_id]),
                    keys=tuple(keys[account_id]),
                    configurations=tuple(configs[account_id]),
                    access_keys=tuple(access[account_id]),
                )
                for (account_id,) in c.execute("SELECT id FROM accounts")
            )
        finally:
            c.execute("COMMIT")
        return StoreState(revision, accounts, self._overrides, self._allow_private)
