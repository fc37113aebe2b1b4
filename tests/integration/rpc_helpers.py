"""Shared helpers for the admin API integration tests.

- `rich_error` / `expect_error`: decode the `google.rpc.Status` a failed call carries in
  `grpc-status-details-bin` (ErrorInfo reason, BadRequest field paths, PreconditionFailure
  subjects) into one flat value that tests can assert on.
- `Api`: every admin stub on one channel plus small factories for the resources most tests need.
- `Recorder`: a client interceptor that keeps the wire bytes of every response and error, so
  leak tests can search everything the server ever said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import access_key_configurations_pb2_grpc as cfg_grpc
from keyway.v1 import access_keys_pb2 as ak
from keyway.v1 import access_keys_pb2_grpc as ak_grpc
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import accounts_pb2_grpc as acc_grpc
from keyway.v1 import admin_api_keys_pb2 as adk
from keyway.v1 import admin_api_keys_pb2_grpc as adk_grpc
from keyway.v1 import master_keys_pb2_grpc as mk_grpc
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import provider_keys_pb2_grpc as pk_grpc
from keyway.v1 import providers_pb2 as prov
from keyway.v1 import providers_pb2_grpc as prov_grpc

from control_plane.server import Settings

from .control_planes import RunningControlPlane, start_control_plane, stop_control_plane

Metadata = tuple[tuple[str, str], ...]
T = TypeVar("T")

ERROR_DOMAIN = "keyway.dev"

# Long, distinctive secrets: nothing else in a response could contain a 12-character window
# of them by accident.
OPENAI_VALUE = "sk-proj-QzT7wV1nR4bY8uK2mL5pX9cE3hJ6gA0dF"
OPENAI_VALUE_2 = "sk-proj-Hn3Vb8Rt5Wq1Zx7Lm4Kp0Yc6Ju2Gd9Se"
ANTHROPIC_VALUE = "sk-ant-api03-Wm8Qv3Lr6Tz1Np5Hx9Bk2Jc7Fy4Gd0Sa"


# -- rich errors -------------------------------------------------------------------------


@dataclass(frozen=True)
class RichError:
    code: grpc.StatusCode
    message: str
    reason: str
    domain: str
    fields: tuple[str, ...]
    """BadRequest field paths, in the order the server reported them."""
    subjects: tuple[str, ...]
    """PreconditionFailure subjects."""
    details_bin: bytes
    """The raw `grpc-status-details-bin` trailer."""


def rich_error(error: grpc.RpcError) -> RichError:
    assert isinstance(error, grpc.Call), error
    status = rpc_status.from_call(error)
    assert status is not None, f"{error.code()} carries no google.rpc.Status: {error.details()}"
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    reason = domain = ""
    fields: list[str] = []
    subjects: list[str] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason, domain = info.reason, info.domain
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            subjects.extend(v.subject for v in failure.violations)
    assert reason, f"no ErrorInfo in {status}"
    return RichError(
        code=error.code(),
        message=status.message,
        reason=reason,
        domain=domain,
        fields=tuple(fields),
        subjects=tuple(subjects),
        details_bin=status.SerializeToString(),
    )


def expect_error(code: grpc.StatusCode, call: Callable[[], object]) -> RichError:
    """Runs `call`, which must fail with `code`; returns the decoded status."""
    with pytest.raises(grpc.RpcError) as info:
        call()
    error = rich_error(info.value)
    assert error.code == code, f"expected {code}, got {error.code}: {error.message}"
    assert error.domain == ERROR_DOMAIN
    return error


# -- recording every response ------------------------------------------------------------


@dataclass
class Recorder(grpc.UnaryUnaryClientInterceptor):
    """Keeps the bytes of every response, error message and error trailer."""

    blobs: list[bytes] = field(default_factory=list)
    calls: int = 0

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        outcome = continuation(client_call_details, request)
        self.calls += 1
        try:
            response = outcome.result()
        except grpc.RpcError as error:
            if not isinstance(error, grpc.Call):
                raise
            self.blobs.append((error.details() or "").encode())
            for key, value in error.trailing_metadata() or ():
                self.blobs.append(key.encode())
                self.blobs.append(value if isinstance(value, bytes) else value.encode())
        else:
            assert isinstance(response, Message)
            self.blobs.append(response.SerializeToString())
            self.blobs.append(str(response).encode())
            self.blobs.append(json_format.MessageToJson(response).encode())
        return outcome


def with_last_char_changed(token: str) -> str:
    """A malformed token: always differs from `token` (its checksum then fails)."""
    return token[:-1] + ("A" if token[-1] != "A" else "B")


def windows(value: str, width: int = 12) -> set[str]:
    """Every `width`-character substring of `value`."""
    return {value[i : i + width] for i in range(len(value) - width + 1)}


def leaks(haystack: bytes, secrets: Iterable[str], width: int = 12) -> list[str]:
    """The 12-character windows of `secrets` found in `haystack` (empty when none leak)."""
    found = []
    for secret in secrets:
        for window in sorted(windows(secret, width)):
            if window.encode() in haystack:
                found.append(window)
    return found


# -- the admin API as one object ---------------------------------------------------------


class Api:
    """Every admin stub on one channel, and factories that call them with `metadata`."""

    def __init__(self, channel: grpc.Channel, metadata: Metadata) -> None:
        self.md = metadata
        self.accounts = acc_grpc.AccountServiceStub(channel)
        self.admin_keys = adk_grpc.AdminApiKeyServiceStub(channel)
        self.provider_keys = pk_grpc.ProviderKeyServiceStub(channel)
        self.access_keys = ak_grpc.AccessKeyServiceStub(channel)
        self.configurations = cfg_grpc.AccessKeyConfigurationServiceStub(channel)
        self.providers = prov_grpc.ProviderServiceStub(channel)
        self.master_keys = mk_grpc.MasterKeyServiceStub(channel)

    def provider_key(
        self, provider_id: str = "openai", value: str = OPENAI_VALUE, name: str = "key"
    ) -> pk.ProviderKey:
        request = pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(provider_id=provider_id, name=name), value=value
        )
        return self.provider_keys.CreateProviderKey(request, metadata=self.md).provider_key

    def access_key(self, name: str = "app", configuration_id: str = "") -> tuple[ak.AccessKey, str]:
        request = ak.CreateAccessKeyRequest(
            access_key=ak.AccessKey(name=name, configuration_id=configuration_id)
        )
        response = self.access_keys.CreateAccessKey(request, metadata=self.md)
        return response.access_key, response.token

    def configuration(
        self, document: dict[str, Any] | None = None, **fields: Any
    ) -> cfg.AccessKeyConfiguration:
        config = configuration_from(document or {"name": "config"})
        for name, value in fields.items():
            setattr(config, name, value)
        request = cfg.CreateAccessKeyConfigurationRequest(configuration=config)
        return self.configurations.CreateAccessKeyConfiguration(
            request, metadata=self.md
        ).configuration

    def custom_provider(
        self, provider_id: str = "x-acme", base_url: str = "https://llm.acme.example/v1"
    ) -> prov.CustomProvider:
        request = prov.CreateCustomProviderRequest(
            custom_provider=prov.CustomProvider(
                provider_id=provider_id,
                name=f"{provider_id} LLM",
                base_url=base_url,
                formats=[prov.API_FORMAT_OPENAI],
                models=[prov.ProviderModel(id="acme-large", upstream_id="large-v2")],
            )
        )
        return self.providers.CreateCustomProvider(request, metadata=self.md).custom_provider

    def new_account(self, operator: Metadata, name: str = "Second") -> tuple[acc.Account, str]:
        """Creates an account with the operator token and an admin key for it."""
        account = self.accounts.CreateAccount(
            acc.CreateAccountRequest(account=acc.Account(display_name=name)), metadata=operator
        ).account
        token = self.admin_keys.CreateAdminApiKey(
            adk.CreateAdminApiKeyRequest(
                account_id=account.id, admin_api_key=adk.AdminApiKey(name=f"{name} admin")
            ),
            metadata=operator,
        ).token
        return account, token


def configuration_from(document: dict[str, Any]) -> cfg.AccessKeyConfiguration:
    """The documented JSON shape (camelCase) parsed into the API message."""
    return json_format.ParseDict(document, cfg.AccessKeyConfiguration())


def router(*rules: dict[str, Any]) -> dict[str, Any]:
    return {"rules": list(rules)}


def rule(provider: str, *key_ids: str, model: str = "", **step: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "provider": provider,
        "steps": [{"type": "user", "keys": [{"id": k} for k in key_ids], **step}],
    }
    if model:
        out["model"] = model
    return out


def auth(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


@contextmanager
def running(settings: Settings) -> Iterator[RunningControlPlane]:
    """A control plane outside the function-scoped fixture (module-scoped fixtures, env)."""
    server, loop = start_control_plane(settings)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
    try:
        yield RunningControlPlane(
            address=f"127.0.0.1:{server.port}",
            operator_token=(settings.data_dir / "operator.token").read_text().strip(),
            admin_token=(settings.data_dir / "admin.token").read_text().strip(),
            data_dir=settings.data_dir,
            server=server,
            channel=channel,
        )
    finally:
        channel.close()
        stop_control_plane(server, loop)


def database_bytes(data_dir: Path) -> bytes:
    """The SQLite database with its WAL (and shared-memory index) as one blob."""
    blob = b""
    for name in ("keyway.db", "keyway.db-wal", "keyway.db-shm"):
        path = data_dir / name
        if path.exists():
            blob += path.read_bytes()
    return blob


def product_document(primary: str, backup: str, cheap: str) -> dict[str, Any]:
    """The README's configuration example, verbatim apart from the key ids."""
    return {
        "name": "Production",
        "access": {
            "providers": {"allow": ["openai", "anthropic"]},
            "models": {"allow": ["openai/gpt-4o", "anthropic/claude-sonnet-4-5"]},
        },
        "router": {
            "rules": [
                {
                    "provider": "openai",
                    "steps": [
                        {
                            "type": "user",
                            "keySelectionStrategy": "ordered",
                            "keys": [{"id": primary}, {"id": backup}],
                        }
                    ],
                },
                {
                    "provider": "openai",
                    "model": "gpt-4o-mini",
                    "steps": [{"type": "user", "keys": [{"id": cheap}]}],
                },
            ]
        },
    }
