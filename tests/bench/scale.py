"""The benchmark-scale data set, written through the real Store (real sealing, real validation).

1,000 accounts, each with 10 provider keys (6 OpenAI, 4 Anthropic), 1 configuration (an
access scope plus three router rules naming keys of the account) and 10 access keys, 9 of
them linked to the configuration. Each account goes in as one transaction, so building it
costs 1,000 commits instead of 22,000.
"""

from __future__ import annotations

import os
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from keyway.v1 import access_key_configurations_pb2 as cfg

from control_plane.domain.tokens import TokenKind, mint
from control_plane.secrets.keyring import load_key_provider
from control_plane.secrets.sealing import Sealer
from control_plane.secrets.secret import Secret
from control_plane.store import postgres
from control_plane.store.port import Store
from control_plane.store.records import (
    AccessKeyFields,
    ConfigurationFields,
    Labels,
    ProviderKeyFields,
)
from control_plane.store.sqlite import open_store

_ALPHABET = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class Scale:
    accounts: int = 1_000
    openai_keys: int = 6
    anthropic_keys: int = 4
    access_keys: int = 10
    configurations: int = 1

    @property
    def provider_keys_total(self) -> int:
        return self.accounts * (self.openai_keys + self.anthropic_keys)

    @property
    def access_keys_total(self) -> int:
        return self.accounts * self.access_keys

    @property
    def configurations_total(self) -> int:
        return self.accounts * self.configurations


FULL = Scale()


@dataclass(frozen=True, slots=True)
class Dataset:
    path: Path
    """The SQLite database."""
    sealer: Sealer
    tokens: tuple[str, ...]
    """Every access-key token, to look callers up like a request would."""
    revision: int


def _secret(prefix: str) -> Secret:
    return Secret(prefix + "".join(secrets.choice(_ALPHABET) for _ in range(40)))


def _configuration(openai: list[str], anthropic: list[str]) -> cfg.AccessKeyConfiguration:
    def step(keys: list[str]) -> cfg.RouterStep:
        return cfg.RouterStep(
            type="user",
            key_selection_strategy="ordered",
            keys=[cfg.KeyReference(id=k) for k in keys],
        )

    return cfg.AccessKeyConfiguration(
        access=cfg.Access(
            providers=cfg.AllowList(allow=["openai", "anthropic"]),
            models=cfg.AllowList(
                allow=["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet-4-5"]
            ),
        ),
        router=cfg.Router(
            rules=[
                cfg.RouterRule(provider="openai", steps=[step(openai[:3])]),
                cfg.RouterRule(provider="openai", model="gpt-4o-mini", steps=[step(openai[3:5])]),
                cfg.RouterRule(provider="anthropic", steps=[step(anthropic[:2])]),
            ]
        ),
    )


@dataclass(frozen=True, slots=True)
class PostgresDataset:
    url: str
    key_file: Path
    """The master keyring it is sealed with (for a control plane's --master-key-file)."""
    sealer: Sealer
    revision: int


def build_postgres(url: str, key_dir: Path, scale: Scale = FULL) -> PostgresDataset:
    """The same data set in the (empty) PostgreSQL database or schema at `url`."""
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    sealer = Sealer(load_key_provider(key_dir, os.environ))
    store = postgres.open_store(url, sealer)
    try:
        _, revision = populate(store, scale)
    finally:
        store.close()
    return PostgresDataset(url, key_dir / "master.keys", sealer, revision)


def build(data_dir: Path, scale: Scale = FULL) -> Dataset:
    """Creates `data_dir` with the data set; a ControlPlane may then be started on it."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    sealer = Sealer(load_key_provider(data_dir, os.environ))
    path = data_dir / "keyway.db"
    store = open_store(path, sealer)
    tokens, revision = populate(store, scale)
    store.close()
    return Dataset(path, sealer, tokens, revision)


def populate(store: Store, scale: Scale = FULL) -> tuple[tuple[str, ...], int]:
    """Writes the data set into an empty store (any adapter): its tokens and revision."""
    tokens: list[str] = []
    for a in range(scale.accounts):
        # One transaction per account: a single one for everything would make PostgreSQL
        # walk ever longer version chains of the rows every write updates.
        with store.transaction():
            account = store.create_account(
                Labels(name=f"account-{a:04d}", description="scale benchmark")
            ).id
            openai = [
                store.create_provider_key(
                    account,
                    provider_id="openai",
                    fields=ProviderKeyFields(name=f"openai-{k}"),
                    value=_secret("sk-proj-"),
                ).id
                for k in range(scale.openai_keys)
            ]
            anthropic = [
                store.create_provider_key(
                    account,
                    provider_id="anthropic",
                    fields=ProviderKeyFields(name=f"anthropic-{k}"),
                    value=_secret("sk-ant-api03-"),
                ).id
                for k in range(scale.anthropic_keys)
            ]
            configs = [
                store.create_configuration(
                    account,
                    fields=ConfigurationFields(
                        name=f"config-{c}", body=_configuration(openai, anthropic)
                    ),
                ).id
                for c in range(scale.configurations)
            ]
            for k in range(scale.access_keys):
                # The last key of each account keeps the default allow-all routing.
                linked = configs[k % len(configs)] if k < scale.access_keys - 1 else None
                token = mint(TokenKind.ACCESS)
                store.create_access_key(
                    account,
                    fields=AccessKeyFields(name=f"access-{k}", configuration_id=linked),
                    token=token,
                )
                tokens.append(token)
    return tuple(tokens), store.revision()
