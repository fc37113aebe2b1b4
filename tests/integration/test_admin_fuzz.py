"""Every admin RPC against arbitrary requests: never INTERNAL, never a partial write.

Requests are generated from each RPC's own descriptor (strings of every kind, the ids
of a real world of resources, unknown ids, odd numbers, unknown enum values, field masks
naming real and made-up fields), sent as an account admin or as the operator. Whatever
comes back must be an answer: a success, or an error with a stable reason that leaves
the store revision where it was and, for bad input, names the field.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keyway.v1 import (
    access_key_configurations_pb2,
    access_keys_pb2,
    accounts_pb2,
    admin_api_keys_pb2,
    data_planes_pb2,
    master_keys_pb2,
    operator_credentials_pb2,
    provider_keys_pb2,
    providers_pb2,
)
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import operator_credentials_pb2 as opc
from keyway.v1 import operator_credentials_pb2_grpc as opc_grpc
from keyway.v1 import provider_keys_pb2 as pk

from control_plane.server import Settings

from .control_planes import RunningControlPlane
from .rpc_helpers import (
    ANTHROPIC_VALUE,
    OPENAI_VALUE,
    Api,
    Metadata,
    auth,
    expect_error,
    router,
    rule,
    running,
)

EXAMPLES = int(os.environ.get("KEYWAY_FUZZ_EXAMPLES", "25"))

METHODS: list[MethodDescriptor] = [
    method
    for module in (
        accounts_pb2,
        admin_api_keys_pb2,
        provider_keys_pb2,
        access_keys_pb2,
        access_key_configurations_pb2,
        providers_pb2,
        master_keys_pb2,
        operator_credentials_pb2,
        data_planes_pb2,
    )
    for service in module.DESCRIPTOR.services_by_name.values()
    for method in service.methods
]
# Answers that mean the server broke, not that the request was refused.
BROKEN = {
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.DATA_LOSS,
}
SECRETS = ("sk-proj-FuzzSecretZq8Xw2Vb6Nm4Lk0Jh3Gf7", OPENAI_VALUE, ANTHROPIC_VALUE)


@pytest.fixture(scope="module")
def cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningControlPlane]:
    data_dir: Path = tmp_path_factory.mktemp("fuzz") / "data"
    with running(Settings(listen="127.0.0.1:0", data_dir=data_dir)) as cp:
        yield cp


@dataclass(frozen=True)
class World:
    admin: Metadata
    operator: Metadata
    ids: tuple[str, ...]


def build_world(cp: RunningControlPlane) -> World:
    """A fresh account with one of everything, and an operator credential of its own (so
    rotating or deleting it cannot lock the rest of the module out)."""
    root = Api(cp.channel, cp.operator)
    minted = opc_grpc.OperatorCredentialServiceStub(cp.channel).CreateOperatorCredential(
        opc.CreateOperatorCredentialRequest(credential=opc.OperatorCredential(name="fuzz")),
        metadata=cp.operator,
    )
    operator = auth(minted.token)
    account, token = root.new_account(operator, "fuzzed")
    a = Api(cp.channel, auth(token))
    key = a.provider_key("openai", OPENAI_VALUE)
    other = a.provider_key("anthropic", ANTHROPIC_VALUE)
    config = a.configuration({"name": "c", "router": router(rule("openai", key.id))})
    access, _ = a.access_key("k", config.id)
    custom = a.custom_provider("x-fuzz")
    ids = (
        account.id,
        key.id,
        other.id,
        config.id,
        access.id,
        custom.id,
        minted.credential.id,
    )
    return World(auth(token), operator, ids)


def revision(cp: RunningControlPlane) -> int:
    uri = f"file:{cp.data_dir / 'keyway.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return int(conn.execute("SELECT value FROM revision WHERE id = 1").fetchone()[0])


_TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=300),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\x01ctrl",
            "line\nbreak",
            "x" * 5000,
            "openai",
            "anthropic",
            "x-fuzz",
            "x-Fuzz_",
            "openai/gpt-4o",
            "openai:gpt-4o",
            "https://llm.example/v1",
            "http://127.0.0.1/v1",
            "https://[64:ff9b::a00:1]/v1",
            "ordered",
            "user",
            *SECRETS,
            "acct_aaaaaaaaaaaaaaaa",
            "pk_aaaaaaaaaaaaaaaa",
        ]
    ),
)


def _scalar(field: FieldDescriptor, ids: tuple[str, ...]) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if field.name in ("id", "node_id") or field.name.endswith("_id"):
            return st.one_of(st.sampled_from(ids), _TEXT)
        return _TEXT
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.integers(-3, 50))
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32):
        return st.one_of(st.integers(-5, 1005), st.integers(-(2**31), 2**31 - 1))
    if kind in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return st.integers(-(2**63), 2**63 - 1)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    raise AssertionError(f"no strategy for {field.full_name}")


@st.composite
def messages(
    draw: st.DrawFn, descriptor: Descriptor, ids: tuple[str, ...], depth: int = 0
) -> dict[str, Any]:
    """Field values for `descriptor`, each field set or not at random."""
    values: dict[str, Any] = {}
    for field in descriptor.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None:
            if field.message_type.full_name == "google.protobuf.FieldMask":
                names = [f.name for f in _resource_fields(descriptor)] or ["name"]
                paths = st.one_of(st.sampled_from(names), _TEXT)
                values[field.name] = {"paths": draw(st.lists(paths, max_size=4))}
                continue
            if depth >= 3 or field.message_type.full_name.startswith("google.protobuf."):
                continue
            inner = messages(field.message_type, ids, depth + 1)
        else:
            inner = _scalar(field, ids)
        if field.is_repeated:
            values[field.name] = draw(st.lists(inner, max_size=3))
        else:
            values[field.name] = draw(inner)
    return values


def _resource_fields(request: Descriptor) -> list[FieldDescriptor]:
    """The fields of the resource an Update request carries (for plausible mask paths)."""
    for field in request.fields:
        if field.message_type is not None and not field.message_type.full_name.startswith(
            "google."
        ):
            return list(field.message_type.fields)
    return []


def _build(descriptor: Descriptor, values: dict[str, Any]) -> Message:
    message = message_factory.GetMessageClass(descriptor)()
    for name, value in values.items():
        field = descriptor.fields_by_name[name]
        if field.message_type is not None:
            if field.is_repeated:
                for item in value:
                    getattr(message, name).add().CopyFrom(_build(field.message_type, item))
            else:
                getattr(message, name).CopyFrom(_build(field.message_type, value))
        elif field.is_repeated:
            getattr(message, name).extend(value)
        else:
            setattr(message, name, value)
    return message


def _secret_fields(message: Message) -> list[str]:
    """Values of the request's secret-bearing fields (a provider key's `value`), if long
    enough that finding them in an answer cannot be a coincidence."""
    found = []
    for field, value in message.ListFields():
        if field.name == "value" and isinstance(value, str) and len(value) >= 12:
            found.append(value)
        elif field.message_type is not None and not field.is_repeated:
            found.extend(_secret_fields(value))
    return found


def _other_strings(message: Message) -> list[str]:
    """Values of the request's other string fields, which an error may quote back."""
    found = []
    for field, value in message.ListFields():
        if isinstance(value, str) and field.name != "value":
            found.append(value)
        elif field.message_type is not None and not field.is_repeated:
            found.extend(_other_strings(value))
    return found


def _call(cp: RunningControlPlane, method: MethodDescriptor) -> Any:
    return cp.channel.unary_unary(
        f"/{method.containing_service.full_name}/{method.name}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=message_factory.GetMessageClass(method.output_type).FromString,
    )


def _check_refusal(error: grpc.RpcError, request: Message) -> None:
    assert isinstance(error, grpc.Call)
    code = error.code()
    assert code not in BROKEN, f"{code}: {error.details()}"
    status = rpc_status.from_call(error)
    assert status is not None, f"{code} without a google.rpc.Status: {error.details()}"
    reasons, fields = [], []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reasons.append(info.reason)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields.extend(v.field for v in bad.field_violations)
    assert reasons, f"no ErrorInfo: {status}"
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        assert fields, f"INVALID_ARGUMENT naming no field: {status.message}"
        assert fields[0] in status.message
    said = status.SerializeToString() + (error.details() or "").encode()
    quotable = _other_strings(request)
    for secret in _secret_fields(request):
        if any(secret in other for other in quotable):
            continue  # the caller typed it into an id too, and an id is quoted back
        # (An id field is the caller's own handle and may be quoted back; a secret is not.)
        assert secret.encode() not in said, "a secret from the request came back in an error"


@pytest.mark.parametrize("method", METHODS, ids=lambda m: f"{m.containing_service.name}.{m.name}")
def test_every_admin_rpc_answers_arbitrary_requests(
    cp: RunningControlPlane, method: MethodDescriptor
) -> None:
    world = build_world(cp)
    call = _call(cp, method)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        values=messages(method.input_type, world.ids),
        as_operator=st.booleans(),
    )
    def fuzz(values: dict[str, Any], as_operator: bool) -> None:
        request = _build(method.input_type, values)
        before = revision(cp)
        try:
            call(request, metadata=world.operator if as_operator else world.admin, timeout=30)
        except grpc.RpcError as error:
            _check_refusal(error, request)
            assert revision(cp) == before, "a refused request moved the store revision"

    fuzz()


def test_an_absurd_id_is_answered_not_found_not_with_a_transport_error(
    cp: RunningControlPlane,
) -> None:
    """Quoting a 5,000-character id back made the trailers exceed what clients accept."""
    root = Api(cp.channel, cp.operator)
    error = expect_error(
        grpc.StatusCode.NOT_FOUND,
        lambda: root.accounts.GetAccount(acc.GetAccountRequest(id="x" * 5000), metadata=root.md),
    )
    assert error.message.endswith("…")
    admin = Api(cp.channel, cp.admin)
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: admin.provider_keys.ListProviderKeys(
            pk.ListProviderKeysRequest(provider_id="é" * 5000), metadata=admin.md
        ),
    )
