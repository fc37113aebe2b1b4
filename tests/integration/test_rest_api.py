"""The admin REST API on a real control plane's HTTP listener: writes and their status
codes, bodies both ways, field masks from PATCH bodies, etags, paging, health, CORS, the
OpenAPI document, and that secrets stay where they belong."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from keyway.v1 import provider_keys_pb2 as pk
from openapi_spec_validator import validate

from control_plane.http.openapi import document

from .proxies import proxy_settings, start_proxy, wait_until
from .rest_client import ROUTER, RestPlane, rest_plane
from .rpc_helpers import OPENAI_VALUE, OPENAI_VALUE_2, Api, auth, expect_error

NEW_VALUE = "sk-proj-Rt5Wq1Zx7Lm4Kp0Yc6Ju2Gd9SeHn3Vb8"


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[RestPlane]:
    with rest_plane(tmp_path / "data") as p:
        yield p


def _admin(p: RestPlane) -> dict[str, str]:
    return p.headers(p.admin_token)


def _create_key(p: RestPlane, value: str = OPENAI_VALUE, name: str = "My OpenAI Key") -> Any:
    response = p.http.post(
        "/provider-keys",
        json={"providerId": "openai", "name": name, "value": value},
        headers=_admin(p),
    )
    assert response.status_code == 201, response.text
    return response.json()["providerKey"]


def test_the_reference_products_provider_key_calls_work_and_rotation_keeps_the_id(
    plane: RestPlane,
) -> None:
    created = _create_key(plane)
    assert created["providerId"] == "openai"
    assert created["redactedValue"] == "sk-proj-Qz***A0dF"
    rotated = plane.http.post(
        f"/provider-keys/{created['id']}/rotate",
        json={"name": "Rotated", "value": NEW_VALUE},
        headers=_admin(plane),
    )
    assert rotated.status_code == 200, rotated.text
    key = rotated.json()["providerKey"]
    assert (key["id"], key["name"], key["redactedValue"]) == (
        created["id"],
        "Rotated",
        "sk-proj-Rt***3Vb8",
    )
    # The same resource over gRPC, under /v1 too.
    got = Api(plane.channel, auth(plane.admin_token)).provider_keys.GetProviderKey(
        pk.GetProviderKeyRequest(id=created["id"]), metadata=auth(plane.admin_token)
    )
    assert got.provider_key.name == "Rotated"
    again = plane.http.get(f"/v1/provider-keys/{created['id']}", headers=_admin(plane))
    assert again.json()["providerKey"]["etag"] == got.provider_key.etag


def test_the_grpc_requests_json_is_accepted_as_the_body_too(plane: RestPlane) -> None:
    created = plane.http.post(
        "/v1/provider-keys",
        json={"providerKey": {"providerId": "openai", "name": "aip"}, "value": OPENAI_VALUE},
        headers=_admin(plane),
    )
    assert created.status_code == 201, created.text
    key = created.json()["providerKey"]
    assert (key["name"], key["redactedValue"]) == ("aip", "sk-proj-Qz***A0dF")
    renamed = plane.http.patch(
        f"/v1/provider-keys/{key['id']}",
        json={"providerKey": {"name": "renamed", "description": "kept"}, "updateMask": "name"},
        headers=_admin(plane),
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["providerKey"]["name"] == "renamed"
    assert "description" not in renamed.json()["providerKey"]


def test_grpc_callers_may_put_the_value_in_the_resource_but_not_twice(plane: RestPlane) -> None:
    api = Api(plane.channel, auth(plane.admin_token))
    inside = api.provider_keys.CreateProviderKey(
        pk.CreateProviderKeyRequest(
            provider_key=pk.ProviderKey(provider_id="openai", name="k", value=OPENAI_VALUE)
        ),
        metadata=api.md,
    ).provider_key
    assert inside.redacted_value == "sk-proj-Qz***A0dF"
    assert not inside.value
    revision = plane.revision()
    error = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        lambda: api.provider_keys.CreateProviderKey(
            pk.CreateProviderKeyRequest(
                provider_key=pk.ProviderKey(provider_id="openai", name="k", value=OPENAI_VALUE),
                value=OPENAI_VALUE_2,
            ),
            metadata=api.md,
        ),
    )
    assert list(error.fields) == ["value"]
    assert plane.revision() == revision


def test_creates_answer_201_deletes_204_with_no_body_and_reads_200(plane: RestPlane) -> None:
    key = _create_key(plane)
    assert plane.http.get("/provider-keys", headers=_admin(plane)).status_code == 200
    deleted = plane.http.delete(f"/provider-keys/{key['id']}", headers=_admin(plane))
    assert (deleted.status_code, deleted.content) == (204, b"")
    gone = plane.http.get(f"/provider-keys/{key['id']}", headers=_admin(plane))
    assert gone.status_code == 404
    assert gone.json()["error"]["status"] == "NOT_FOUND"


def test_an_access_keys_token_is_in_its_create_answer_only(plane: RestPlane) -> None:
    created = plane.http.post("/access-keys", json={"name": "app"}, headers=_admin(plane))
    assert created.status_code == 201
    token = created.json()["token"]
    assert token.startswith("kwak_")
    key_id = created.json()["accessKey"]["id"]
    for path in (f"/access-keys/{key_id}", "/access-keys"):
        assert token not in plane.http.get(path, headers=_admin(plane)).text


def test_patch_writes_the_fields_in_its_body_so_false_can_be_set(plane: RestPlane) -> None:
    key = _create_key(plane)
    path = f"/provider-keys/{key['id']}"
    paused = plane.http.patch(path, json={"disabled": True}, headers=_admin(plane))
    assert paused.json()["providerKey"]["disabled"] is True
    enabled = plane.http.patch(path, json={"disabled": False}, headers=_admin(plane))
    assert enabled.status_code == 200, enabled.text
    assert "disabled" not in enabled.json()["providerKey"]  # false: the proto3 JSON default
    assert enabled.json()["providerKey"]["name"] == "My OpenAI Key"
    # An explicit mask wins over the body's fields.
    masked = plane.http.patch(
        path,
        params={"updateMask": "description"},
        json={"description": "d", "name": "ignored"},
        headers=_admin(plane),
    )
    assert (masked.json()["providerKey"]["description"], masked.json()["providerKey"]["name"]) == (
        "d",
        "My OpenAI Key",
    )


def test_patch_cannot_set_a_value_and_says_to_rotate(plane: RestPlane) -> None:
    key = _create_key(plane)
    revision = plane.revision()
    refused = plane.http.patch(
        f"/provider-keys/{key['id']}", json={"value": NEW_VALUE}, headers=_admin(plane)
    )
    assert refused.status_code == 400
    violations = _violations(refused)
    assert [v["field"] for v in violations] == ["update_mask.paths[0]"]
    assert NEW_VALUE not in refused.text
    assert plane.revision() == revision


def test_if_match_makes_writes_conditional_and_etag_headers_name_the_version(
    plane: RestPlane,
) -> None:
    key = _create_key(plane)
    path = f"/provider-keys/{key['id']}"
    read = plane.http.get(path, headers=_admin(plane))
    assert read.headers["etag"] == f'"{key["etag"]}"'
    revision = plane.revision()
    stale = plane.http.patch(
        path, json={"name": "x"}, headers={**_admin(plane), "If-Match": '"not-it"'}
    )
    assert stale.status_code == 409
    assert stale.json()["error"]["status"] == "ABORTED"
    deleted = plane.http.delete(path, headers={**_admin(plane), "If-Match": '"not-it"'})
    assert deleted.status_code == 409
    assert plane.revision() == revision
    fresh = plane.http.patch(
        path, json={"name": "x"}, headers={**_admin(plane), "If-Match": read.headers["etag"]}
    )
    assert fresh.status_code == 200, fresh.text
    rotated = plane.http.post(
        f"{path}/rotate",
        json={"value": NEW_VALUE},
        headers={**_admin(plane), "If-Match": fresh.headers["etag"]},
    )
    assert rotated.status_code == 200, rotated.text


def test_lists_page_with_query_parameters(plane: RestPlane) -> None:
    for name in ("a", "b", "c"):
        _create_key(plane, name=name)
    names: list[str] = []
    params: dict[str, Any] = {"pageSize": 2}
    while True:
        page = plane.http.get("/provider-keys", params=params, headers=_admin(plane)).json()
        names += [k["name"] for k in page["providerKeys"]]
        if not page.get("nextPageToken"):
            break
        params = {"page_size": 2, "pageToken": page["nextPageToken"]}  # proto names work too
    assert names == ["a", "b", "c"]
    none = plane.http.get(
        "/provider-keys", params={"providerId": "anthropic"}, headers=_admin(plane)
    )
    assert none.json() == {}


def _violations(response: httpx.Response) -> list[dict[str, str]]:
    for detail in response.json()["error"]["details"]:
        if detail["@type"].endswith("google.rpc.BadRequest"):
            return list(detail["fieldViolations"])
    return []


BAD_INPUT = [
    # (what, method, path, body bytes or JSON, query, expected status, expected field)
    ("malformed JSON", "POST", "/provider-keys", b'{"name": ', {}, 400, "body"),
    ("not an object", "POST", "/provider-keys", b"[1, 2]", {}, 400, "body"),
    ("not UTF-8", "POST", "/provider-keys", b'{"name": "\xff"}', {}, 400, "body"),
    ("wrong type", "POST", "/provider-keys", {"providerId": 7, "name": "k"}, {}, 400, "providerId"),
    ("bool as string", "PATCH", "/provider-keys/{pk}", {"disabled": "yes"}, {}, 400, "disabled"),
    (
        "unknown field",
        "POST",
        "/provider-keys",
        {"providerId": "openai", "nam": "k"},
        {},
        400,
        "nam",
    ),
    (
        "unknown nested field",
        "POST",
        "/access-key-configurations",
        {
            "name": "c",
            "router": {
                "rules": [
                    {"provider": "openai", "steps": [{"type": "user", "keys": [{"idd": "x"}]}]}
                ]
            },
        },
        {},
        400,
        "router.rules[0].steps[0].keys[0].idd",
    ),
    (
        "bad router key id",
        "POST",
        "/access-key-configurations",
        {
            "name": "c",
            "router": {
                "rules": [
                    {"provider": "openai", "steps": [{"type": "user", "keys": [{"id": "pk_nope"}]}]}
                ]
            },
        },
        {},
        400,
        "router.rules[0].steps[0].keys[0].id",
    ),
    # An id is looked up as given, so a malformed one is missing, as over gRPC.
    ("bad path id", "GET", "/provider-keys/not an id!", None, {}, 404, ""),
    ("bad path id %2F", "GET", "/provider-keys/pk_a%2Fb", None, {}, 404, ""),
    (
        "body differs from path",
        "PATCH",
        "/provider-keys/{pk}",
        {"id": "pk_other"},
        {},
        400,
        "provider_key.id",
    ),
    ("unknown query parameter", "GET", "/provider-keys", None, {"limit": "5"}, 400, "limit"),
    (
        "query on a write",
        "POST",
        "/provider-keys",
        {"name": "k"},
        {"value": OPENAI_VALUE},
        400,
        "value",
    ),
    ("bad integer", "GET", "/provider-keys", None, {"pageSize": "ten"}, 400, "pageSize"),
    ("body on a read", "GET", "/provider-keys", b'{"a": 1}', {}, 400, "body"),
    ("oversize body", "POST", "/provider-keys", b" " * (4 * 1024 * 1024 + 1), {}, 413, "body"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "query", "status", "field"),
    [case[1:] for case in BAD_INPUT],
    ids=[case[0] for case in BAD_INPUT],
)
def test_bad_input_is_a_4xx_naming_the_field_and_writes_nothing(
    plane: RestPlane,
    method: str,
    path: str,
    body: Any,
    query: dict[str, str],
    status: int,
    field: str,
) -> None:
    key = _create_key(plane)
    revision = plane.revision()
    content = body if isinstance(body, bytes) else None if body is None else json.dumps(body)
    response = plane.http.request(
        method,
        path.replace("{pk}", key["id"]),
        params=query,
        content=content,
        headers={**_admin(plane), "Content-Type": "application/json"},
    )
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status
    assert error["status"] in ("INVALID_ARGUMENT", "NOT_FOUND")
    if field:
        assert field in [v["field"] for v in _violations(response)], response.text
    assert OPENAI_VALUE not in response.text
    assert plane.revision() == revision


def test_missing_or_bad_auth_is_401_and_an_operator_token_on_account_rpcs_403(
    plane: RestPlane,
) -> None:
    revision = plane.revision()
    body = {"providerId": "openai", "name": "k", "value": OPENAI_VALUE}
    missing = plane.http.post("/provider-keys", json=body)
    assert (missing.status_code, missing.json()["error"]["status"]) == (401, "UNAUTHENTICATED")
    wrong = plane.http.post("/provider-keys", json=body, headers={"Authorization": "Basic x"})
    assert wrong.status_code == 401
    forged = plane.http.post(
        "/provider-keys", json=body, headers=plane.headers("kwadm_" + "a" * 40)
    )
    assert forged.status_code == 401
    operator = plane.http.post(
        "/provider-keys", json=body, headers=plane.headers(plane.operator_token)
    )
    assert operator.status_code == 403
    assert plane.revision() == revision


def test_another_accounts_id_is_reported_exactly_like_a_missing_one(plane: RestPlane) -> None:
    api = Api(plane.channel, auth(plane.admin_token))
    _, other_token = api.new_account(auth(plane.operator_token))
    theirs = Api(plane.channel, auth(other_token)).provider_key(name="theirs")
    revision = plane.revision()
    for method, suffix, body in (
        ("GET", "", None),
        ("PATCH", "", {"name": "mine now"}),
        ("DELETE", "", None),
        ("POST", "/rotate", {"value": NEW_VALUE}),
    ):
        real = plane.http.request(
            method, f"/provider-keys/{theirs.id}{suffix}", json=body, headers=_admin(plane)
        )
        missing_id = "pk_" + "z" * (len(theirs.id) - 3)
        missing = plane.http.request(
            method, f"/provider-keys/{missing_id}{suffix}", json=body, headers=_admin(plane)
        )
        assert real.status_code == missing.status_code == 404
        assert real.text.replace(theirs.id, missing_id) == missing.text
    assert plane.revision() == revision


def test_unknown_paths_are_404_and_wrong_methods_405_with_allow(plane: RestPlane) -> None:
    unknown = plane.http.get("/nothing-here", headers=_admin(plane))
    assert (unknown.status_code, unknown.json()["error"]["status"]) == (404, "NOT_FOUND")
    wrong = plane.http.put("/provider-keys", headers=_admin(plane))
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET, POST"
    assert wrong.json()["error"]["code"] == 405


def test_no_cors_headers_are_sent(plane: RestPlane) -> None:
    origin = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    preflight = plane.http.options("/provider-keys", headers=origin)
    assert "access-control-allow-origin" not in preflight.headers
    read = plane.http.get("/provider-keys", headers={**_admin(plane), **origin})
    assert "access-control-allow-origin" not in read.headers


def test_health_and_readiness(plane: RestPlane) -> None:
    assert plane.http.get("/healthz").json() == {"status": "ok"}
    assert plane.http.get("/readyz").json() == {"status": "ready"}


def test_the_openapi_document_validates_and_has_every_route(plane: RestPlane) -> None:
    served = plane.http.get("/openapi.json")
    assert served.status_code == 200
    spec = served.json()
    validate(spec)
    assert spec == json.loads(json.dumps(document(ROUTER)))
    operations = {(verb.upper(), path) for path, item in spec["paths"].items() for verb in item}
    assert operations == {(b.verb, b.template) for b in ROUTER.bindings}
    assert len({b.rpc for b in ROUTER.bindings}) == 44
    create = spec["paths"]["/provider-keys"]["post"]
    assert create["description"].startswith("Stores a new provider key.")
    assert "201" in create["responses"]
    assert spec["paths"]["/provider-keys/{id}"]["delete"]["responses"]["204"]
    schema = spec["components"]["schemas"]["keyway.v1.ProviderKey"]
    assert "input only" in schema["properties"]["value"]["description"]
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_secrets_never_reach_the_log_or_any_answer_but_their_create(
    plane: RestPlane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = _create_key(plane)
    rotated = plane.http.post(
        f"/provider-keys/{key['id']}/rotate", json={"value": NEW_VALUE}, headers=_admin(plane)
    )
    bad = plane.http.post(
        "/provider-keys",
        json={"providerId": "nope", "name": "", "value": OPENAI_VALUE_2 + "\n"},
        headers=_admin(plane),
    )
    token = plane.http.post("/access-keys", json={"name": "a"}, headers=_admin(plane)).json()[
        "token"
    ]
    answers = json.dumps(key) + rotated.text + bad.text
    for secret in (OPENAI_VALUE, NEW_VALUE, OPENAI_VALUE_2):
        assert secret[8:20] not in answers
        assert secret[8:20] not in caplog.text
    assert token not in caplog.text
    assert plane.admin_token not in caplog.text
    lines = [r.getMessage() for r in caplog.records if r.name == "keyway.control_plane.http"]
    assert any(line.startswith("POST /provider-keys 201 caller=adk_") for line in lines), lines


def test_make_openapi_prints_the_served_document() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "control_plane.http"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(printed.stdout) == json.loads(json.dumps(document(ROUTER)))


def test_the_request_log_names_routes_not_what_was_typed_into_a_path(
    plane: RestPlane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keyway.control_plane.http")
    plane.http.get(f"/provider-keys/{OPENAI_VALUE}", headers=_admin(plane))
    plane.http.get(f"/no/{OPENAI_VALUE}", headers=_admin(plane))
    plane.http.get("/healthz")
    lines = [r.getMessage() for r in caplog.records if r.name == "keyway.control_plane.http"]
    assert OPENAI_VALUE[8:20] not in caplog.text
    assert [line.split(" caller=")[0] for line in lines] == [
        "GET /provider-keys/{id} 404",
        "GET (no route) 404",
        "GET /healthz 200",
    ]
    assert lines[0].split(" caller=")[1].startswith("adk_")
    assert lines[2].split(" caller=")[1].startswith("- ")


def test_an_oversize_request_head_is_refused(plane: RestPlane) -> None:
    try:
        response = plane.http.get(
            "/provider-keys", headers={"X-Big": "a" * 200_000, **_admin(plane)}
        )
    except httpx.TransportError:
        return  # answered 400 and closed while the head was still arriving
    assert response.status_code == 400


def test_a_proxy_is_listed_refused_while_connected_and_forgotten_once_gone(
    plane: RestPlane,
) -> None:
    operator = plane.headers(plane.operator_token)
    token = (plane.server.settings.data_dir / "data-plane.token").read_text().strip()
    proxy = start_proxy(proxy_settings(f"127.0.0.1:{plane.server.port}", token, "rest-node"))

    def state() -> str:
        nodes = plane.http.get("/data-planes", headers=operator).json().get("dataPlanes", [])
        return next((n["state"] for n in nodes if n["nodeId"] == "rest-node"), "")

    try:
        wait_until(lambda: state() == "DATA_PLANE_STATE_IN_SYNC", what="the proxy in sync")
        connected = plane.http.delete("/data-planes/rest-node", headers=operator)
        assert connected.status_code == 409
        assert connected.json()["error"]["status"] == "FAILED_PRECONDITION"
    finally:
        proxy.stop()
    wait_until(lambda: state() == "DATA_PLANE_STATE_DISCONNECTED", what="the proxy gone")
    forgotten = plane.http.delete("/v1/data-planes/rest-node", headers=operator)
    assert forgotten.status_code == 204
    assert state() == ""
