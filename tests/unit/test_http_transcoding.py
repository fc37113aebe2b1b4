"""The transcoder's pure parts: routes read from annotations, HTTP requests as request
messages, and the Google JSON error of a status."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2, descriptor_pool, field_mask_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.rpc import code_pb2, error_details_pb2, status_pb2
from keyway.v1 import access_key_configurations_pb2 as cfg
from keyway.v1 import accounts_pb2 as acc
from keyway.v1 import operator_credentials_pb2 as oc
from keyway.v1 import provider_keys_pb2 as pk

from control_plane.cli.main import build_parser
from control_plane.domain.errors import InvalidArgument
from control_plane.http import admin_router
from control_plane.http.bindings import Binding, BindingError, Router, bindings
from control_plane.http.errors import code_name, error_body, http_status
from control_plane.http.transcode import HttpCall, etag_of, request_message, response_body
from control_plane.server import ADMIN_SERVICES

ROUTER = admin_router(list(ADMIN_SERVICES))


def _binding(rpc: str, index: int = 0) -> Binding:
    return ROUTER.by_rpc()[f"/keyway.v1.{rpc}"][index]


def _request(rpc: str, body: Any = None, index: int = 0, **call: Any) -> Any:
    binding = _binding(rpc, index)
    raw = body if isinstance(body, bytes) else b"" if body is None else json.dumps(body).encode()
    return request_message(
        binding,
        HttpCall(
            variables=call.get("variables", {}),
            query=tuple(call.get("query", ())),
            body=raw,
            if_match=call.get("if_match"),
        ),
    )


def _refusal(rpc: str, body: Any = None, **call: Any) -> list[str]:
    with pytest.raises(InvalidArgument) as caught:
        _request(rpc, body, **call)
    return [v.field for v in caught.value.violations]


# -- routes ----------------------------------------------------------------------------------


def test_every_admin_rpc_has_a_route_and_a_v1_twin() -> None:
    by_rpc = ROUTER.by_rpc()
    assert len(by_rpc) == 44
    for rpc, routes in by_rpc.items():
        assert [b.template for b in routes] == [routes[0].template, "/v1" + routes[0].template], rpc


def test_the_router_matches_literals_variables_and_methods() -> None:
    found = ROUTER.find("POST", ("provider-keys", "pk_1", "rotate"))
    assert found is not None
    assert found[0].method.name == "RotateProviderKey"
    assert found[1] == {"id": "pk_1"}
    patch = ROUTER.find("PATCH", ("v1", "accounts", "acct_1"))
    assert patch is not None
    assert patch[1] == {"account.id": "acct_1"}
    assert ROUTER.find("PUT", ("provider-keys",)) is None
    assert ROUTER.verbs(("provider-keys",)) == ["GET", "POST"]
    assert ROUTER.verbs(("provider-keys", "")) == []  # an empty id is no id
    assert ROUTER.verbs(("nothing",)) == []


@pytest.mark.parametrize(
    ("status", "rpc"),
    [
        (201, "ProviderKeyService/CreateProviderKey"),
        (204, "ProviderKeyService/DeleteProviderKey"),
        (200, "ProviderKeyService/RotateProviderKey"),
        (200, "ProviderKeyService/GetProviderKey"),
    ],
)
def test_success_statuses(status: int, rpc: str) -> None:
    assert _binding(rpc).success_status == status


def _service(*rules: http_pb2.HttpRule, name: str = "T") -> ServiceDescriptor:
    """A throwaway service in its own pool whose methods carry `rules`."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{name}.proto", package=f"t{name}")
    file.dependency.append("google/api/annotations.proto")
    enum = file.enum_type.add(name="E")
    enum.value.add(name="E_UNSPECIFIED", number=0)
    enum.value.add(name="E_ONE", number=1)
    request = file.message_type.add(name="Req")
    request.field.add(name="id", number=1, type=9, label=1)
    request.field.add(name="n", number=2, type=5, label=1)
    request.field.add(name="d", number=3, type=1, label=1)
    request.field.add(name="e", number=4, type=14, label=1, type_name=f".t{name}.E")
    request.field.add(name="r", number=5, type=9, label=3)
    request.field.add(name="m", number=6, type=11, label=1, type_name=f".t{name}.Req")
    service = file.service.add(name="S")
    for i, rule in enumerate(rules):
        method = service.method.add(name=f"M{i}", input_type=f".t{name}.Req")
        method.output_type = f".t{name}.Req"
        method.options.Extensions[annotations_pb2.http].CopyFrom(rule)
    pool = descriptor_pool.Default()
    pool.Add(file)
    return pool.FindServiceByName(f"t{name}.S")


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (http_pb2.HttpRule(get="/x/{nope}"), "names no request field"),
        (http_pb2.HttpRule(get="/x/{id=**}"), "unsupported segment"),
        (http_pb2.HttpRule(get="x"), "bad path template"),
        (http_pb2.HttpRule(post="/x", body="n"), "names no message field"),
        (http_pb2.HttpRule(custom=http_pb2.CustomHttpPattern(kind="HEAD", path="/x")), "custom"),
    ],
)
def test_annotations_it_cannot_serve_stop_the_start(rule: http_pb2.HttpRule, problem: str) -> None:
    with pytest.raises(BindingError, match=problem):
        bindings([_service(rule, name="".join(c for c in problem if c.isalpha()))])


def test_a_variables_long_form_is_one_segment() -> None:
    (binding,) = bindings([_service(http_pb2.HttpRule(get="/x/{id=*}"), name="L")])
    assert binding.match(("x", "a")) == {"id": "a"}
    assert (binding.variables, binding.template) == (("id",), "/x/{id}")


def test_two_routes_one_request_could_match_stop_the_start() -> None:
    service = _service(http_pb2.HttpRule(get="/x/{id}"), http_pb2.HttpRule(get="/x/{n}"), name="D")
    with pytest.raises(BindingError, match="is also a route of"):
        bindings([service])
    assert len(Router(bindings([_service(http_pb2.HttpRule(get="/x"), name="E")])).bindings) == 1


def test_query_parameters_of_every_scalar_kind() -> None:
    (binding,) = bindings([_service(http_pb2.HttpRule(get="/q"), name="Q")])

    def read(*query: tuple[str, str]) -> Any:
        return request_message(binding, HttpCall(variables={}, query=query, body=b""))

    got = read(("d", "1.5"), ("e", "E_ONE"), ("r", "a"), ("r", "b"), ("m.n", "4"))
    assert (got.d, got.e, list(got.r), got.m.n) == (1.5, 1, ["a", "b"], 4)
    for key, value, problem in (
        ("d", "x", "must be a number"),
        ("e", "E_TWO", "one of E_UNSPECIFIED, E_ONE"),
        ("m", "1", "cannot be set from the URL"),
    ):
        with pytest.raises(InvalidArgument, match=problem):
            read((key, value))
    body = HttpCall(variables={}, query=(), body=b'{"d": true}')
    (posted,) = bindings([_service(http_pb2.HttpRule(post="/q", body="*"), name="P")])
    with pytest.raises(InvalidArgument, match="d: must be a number"):
        request_message(posted, body)


# -- requests --------------------------------------------------------------------------------


def test_a_flat_create_body_is_the_resource() -> None:
    request = _request(
        "ProviderKeyService/CreateProviderKey",
        {"providerId": "openai", "name": "k", "value": "sk-1"},
    )
    assert request == pk.CreateProviderKeyRequest(
        provider_key=pk.ProviderKey(provider_id="openai", name="k", value="sk-1")
    )


def test_the_whole_request_message_is_a_body_too() -> None:
    request = _request(
        "ProviderKeyService/CreateProviderKey",
        {"providerKey": {"providerId": "openai", "name": "k"}, "value": "sk-1"},
    )
    assert request == pk.CreateProviderKeyRequest(
        provider_key=pk.ProviderKey(provider_id="openai", name="k"), value="sk-1"
    )
    updated = _request(
        "ProviderKeyService/UpdateProviderKey",
        {"providerKey": {"disabled": False, "name": "n"}},
        variables={"provider_key.id": "pk_1"},
    )
    assert list(updated.update_mask.paths) == ["disabled", "name"]
    assert updated.provider_key.id == "pk_1"
    masked = _request(
        "ProviderKeyService/UpdateProviderKey",
        {"provider_key": {"disabled": False, "name": "n"}, "updateMask": "name"},
        variables={"provider_key.id": "pk_1"},
    )
    assert list(masked.update_mask.paths) == ["name"]
    mixed = {"providerKey": {"providerId": "openai"}, "name": "k"}
    assert _refusal("ProviderKeyService/CreateProviderKey", mixed) == ["name"]


def test_proto_names_and_nested_messages_are_read() -> None:
    request = _request(
        "AccessKeyConfigurationService/CreateAccessKeyConfiguration",
        {
            "name": "c",
            "router": {
                "rules": [{"provider": "openai", "steps": [{"key_selection_strategy": "ordered"}]}]
            },
            "limits": {"requestsPerMinute": "5"},
        },
    )
    assert request.configuration.router.rules[0].steps[0].key_selection_strategy == "ordered"
    assert request.configuration.limits.requests_per_minute == 5


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{", "body"),
        (b"\xff", "body"),
        (b"[]", "body"),
        ({"name": 1}, "name"),
        ({"name": True}, "name"),
        ({"accessKeyCount": True}, "accessKeyCount"),
        ({"accessKeyCount": 1.5}, "accessKeyCount"),
        ({"router": []}, "router"),
        ({"router": {"rules": {}}}, "router.rules"),
        (
            {"router": {"rules": [{"steps": [{"keys": [{"idd": "x"}]}]}]}},
            "router.rules[0].steps[0].keys[0].idd",
        ),
        ({"createTime": 5}, "createTime"),
        ({"createTime": "yesterday"}, "body"),
        ({"limits": {"concurrency": "9" * 30}}, "body"),
        ({"access": {"providers": {"allow": [1]}}}, "access.providers.allow[0]"),
    ],
)
def test_a_body_that_does_not_fit_names_the_field(body: Any, field: str) -> None:
    fields = _refusal("AccessKeyConfigurationService/CreateAccessKeyConfiguration", body)
    assert fields == [field]


def test_nulls_enums_and_numbers_in_their_json_forms() -> None:
    request = _request(
        "ProviderService/CreateCustomProvider",
        {"name": None, "formats": ["API_FORMAT_OPENAI", 2], "authStyle": "AUTH_STYLE_BEARER"},
    )
    assert list(request.custom_provider.formats) == [1, 2]
    assert _refusal("ProviderService/CreateCustomProvider", {"authStyle": False}) == ["authStyle"]


def test_path_variables_set_their_fields_and_must_agree_with_the_body() -> None:
    request = _request(
        "AccountService/UpdateAccount",
        {"displayName": "n"},
        variables={"account.id": "acct_1"},
    )
    assert request.account.id == "acct_1"
    same = _request(
        "AccountService/UpdateAccount", {"id": "acct_1"}, variables={"account.id": "acct_1"}
    )
    assert same.account.id == "acct_1"
    assert _refusal(
        "AccountService/UpdateAccount", {"id": "acct_2"}, variables={"account.id": "acct_1"}
    ) == ["account.id"]


def test_patch_without_a_mask_updates_the_fields_in_the_body() -> None:
    request = _request(
        "ProviderKeyService/UpdateProviderKey",
        {"disabled": False, "name": "n", "etag": "3", "id": "pk_1"},
        variables={"provider_key.id": "pk_1"},
    )
    assert list(request.update_mask.paths) == ["disabled", "name"]
    masked = _request(
        "ProviderKeyService/UpdateProviderKey",
        {"disabled": False, "name": "n"},
        variables={"provider_key.id": "pk_1"},
        query=[("updateMask", "name,description")],
    )
    assert list(masked.update_mask.paths) == ["name", "description"]


def test_query_parameters_on_reads_and_deletes_only() -> None:
    listed = _request(
        "ProviderKeyService/ListProviderKeys",
        query=[("pageSize", "3"), ("page_token", "t"), ("providerId", "openai")],
    )
    assert listed == pk.ListProviderKeysRequest(page_size=3, page_token="t", provider_id="openai")
    deleted = _request(
        "AccountService/DeleteAccount",
        variables={"id": "acct_1"},
        query=[("force", "true"), ("etag", "4")],
    )
    assert deleted == acc.DeleteAccountRequest(id="acct_1", force=True, etag="4")
    assert _refusal(
        "AccountService/DeleteAccount", variables={"id": "a"}, query=[("force", "1")]
    ) == ["force"]
    assert _refusal("ProviderKeyService/ListProviderKeys", query=[("pageSize", "x")]) == [
        "pageSize"
    ]
    assert _refusal(
        "ProviderKeyService/ListProviderKeys", query=[("pageSize", "1"), ("pageSize", "2")]
    ) == ["pageSize"]
    assert _refusal("ProviderKeyService/ListProviderKeys", query=[("nope", "1")]) == ["nope"]
    assert _refusal(
        "ProviderKeyService/GetProviderKey", variables={"id": "a"}, query=[("id", "b")]
    ) == ["id"]
    assert _refusal("ProviderKeyService/CreateProviderKey", {}, query=[("value", "sk")]) == [
        "value"
    ]
    assert _refusal("ProviderKeyService/ListProviderKeys", query=[("pageSize.x", "1")]) == [
        "pageSize.x"
    ]


def test_a_body_where_none_is_taken_is_refused() -> None:
    assert _refusal("ProviderKeyService/GetProviderKey", b"{}", variables={"id": "a"}) == ["body"]
    assert _request(
        "OperatorCredentialService/RotateOperatorCredential", b"", variables={"id": "o"}
    ) == oc.RotateOperatorCredentialRequest(id="o")


def test_if_match_sets_the_etag_the_write_checks() -> None:
    deleted = _request(
        "ProviderKeyService/DeleteProviderKey", variables={"id": "pk_1"}, if_match='W/"7"'
    )
    assert deleted.etag == "7"
    updated = _request(
        "ProviderKeyService/UpdateProviderKey",
        {"name": "n"},
        variables={"provider_key.id": "pk_1"},
        if_match='"7"',
    )
    assert updated.provider_key.etag == "7"
    assert list(updated.update_mask.paths) == ["name"]
    agreed = _request(
        "ProviderKeyService/UpdateProviderKey",
        {"name": "n", "etag": "7"},
        variables={"provider_key.id": "pk_1"},
        if_match='"7"',
    )
    assert agreed.provider_key.etag == "7"
    for header in ('"*"', '""'):
        assert _refusal(
            "ProviderKeyService/DeleteProviderKey", variables={"id": "p"}, if_match=header
        ) == ["If-Match"]
    assert _refusal(
        "ProviderKeyService/UpdateProviderKey",
        {"etag": "6"},
        variables={"provider_key.id": "p"},
        if_match='"7"',
    ) == ["If-Match"]
    assert _refusal("ProviderKeyService/GetProviderKey", variables={"id": "p"}, if_match='"7"') == [
        "If-Match"
    ]


def test_responses_are_proto3_json_and_carry_their_etag() -> None:
    reply = cfg.GetAccessKeyConfigurationResponse(
        configuration=cfg.AccessKeyConfiguration(id="akc_1", access_key_count=2, etag="9")
    )
    assert response_body(reply) == {
        "configuration": {"id": "akc_1", "accessKeyCount": 2, "etag": "9"}
    }
    assert etag_of(reply) == "9"
    assert etag_of(pk.ListProviderKeysResponse()) is None
    assert etag_of(pk.DeleteProviderKeyResponse()) is None


# -- errors ----------------------------------------------------------------------------------


def test_errors_are_google_json_with_the_status_details() -> None:
    status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="in use")
    detail = status.details.add()
    detail.Pack(error_details_pb2.ErrorInfo(reason="KEY_IN_USE", domain="keyway.dev"))
    assert error_body(status) == {
        "error": {
            "code": 409,
            "message": "in use",
            "status": "FAILED_PRECONDITION",
            "details": [
                {
                    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                    "reason": "KEY_IN_USE",
                    "domain": "keyway.dev",
                }
            ],
        }
    }
    assert error_body(status, 413)["error"]["code"] == 413
    assert error_body(status_pb2.Status(code=999))["error"]["status"] == code_name(999) == "UNKNOWN"


@pytest.mark.parametrize(
    ("code", "http"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.INTERNAL, 500),
    ],
)
def test_the_grpc_to_http_status_mapping(code: grpc.StatusCode, http: int) -> None:
    assert http_status(code.value[0]) == http


def test_http_listen_defaults_to_8081_and_off_disables_it() -> None:
    parser = build_parser()
    assert parser.parse_args(["control-plane"]).http_listen == "127.0.0.1:8081"
    assert parser.parse_args(["up", "--http-listen", "off"]).http_listen is None
    assert parser.parse_args(["up", "--http-listen", "[::1]:0"]).http_listen == "[::1]:0"


def test_field_masks_from_the_query_are_comma_separated_camel_case() -> None:
    masked = _request(
        "ProviderKeyService/UpdateProviderKey",
        {"name": "n"},
        variables={"provider_key.id": "p"},
        query=[("updateMask", "name,redactedValue")],
    )
    assert masked.update_mask == field_mask_pb2.FieldMask(paths=["name", "redacted_value"])


def test_times_come_from_the_query_as_rfc3339_and_a_bad_one_is_named() -> None:
    request = _request(
        "UsageService/ListUsage",
        query=[("startTime", "2026-11-30T00:00:00Z"), ("groupBy", "USAGE_DIMENSION_MODEL")],
    )
    assert request.start_time.ToJsonString() == "2026-11-30T00:00:00Z"
    assert list(request.group_by) == [4]
    assert _refusal("UsageService/ListUsage", query=[("endTime", "yesterday")]) == ["endTime"]
