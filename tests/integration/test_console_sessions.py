"""The console's sessions on a real control plane's HTTP listener: signing in exchanges a
token for an opaque HttpOnly, SameSite=Strict cookie; the cookie authenticates REST calls,
writes with it need the session's CSRF header and this origin; sign-out and a revoked token
end it; Bearer callers are untouched; pages carry a strict CSP and render no HTML strings."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from control_plane.console.routes import COOKIE
from control_plane.domain import tokens
from control_plane.domain.tokens import TokenKind

from .rest_client import RestPlane, rest_plane

STATIC = Path(__file__).resolve().parents[2] / "control_plane" / "console" / "static"
KEY = {"providerId": "openai", "name": "console", "value": "sk-proj-Console1234567890abcdWXYZ"}


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestPlane]:
    with rest_plane(Path(tmp_path_factory.mktemp("console"))) as p:
        yield p


def sign_in(plane: RestPlane, token: str, **headers: str) -> httpx.Response:
    return plane.http.post("/console/session", json={"token": token}, headers=headers)


def session(plane: RestPlane) -> tuple[str, str]:
    """(cookie value, CSRF value) of a new admin session."""
    signed_in = sign_in(plane, plane.admin_token)
    assert signed_in.status_code == 201
    cookie = signed_in.cookies[COOKIE]
    plane.http.cookies.clear()  # each test sends the cookie it means to
    return cookie, signed_in.json()["csrf"]


def call(plane: RestPlane, method: str, path: str, cookie: str, **options: Any) -> httpx.Response:
    return httpx.request(
        method, f"{plane.url}{path}", cookies={COOKIE: cookie}, timeout=30, **options
    )


def test_sign_in_sets_an_opaque_http_only_strict_cookie(
    plane: RestPlane, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        signed_in = sign_in(plane, plane.admin_token)
    plane.http.cookies.clear()
    assert signed_in.status_code == 201
    header = signed_in.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=")
    assert "HttpOnly" in header
    assert "SameSite=strict" in header
    assert "Path=/" in header
    assert re.search(r"Max-Age=28\d\d\d", header)  # eight hours
    assert "Secure" not in header  # plain HTTP on loopback; see the TLS test
    assert plane.admin_token not in header
    assert plane.admin_token not in signed_in.text
    assert plane.admin_token not in caplog.text
    body = signed_in.json()
    assert body["kind"] == "admin"
    assert body["accountId"].startswith("acct_")


@pytest.mark.parametrize(
    ("body", "content_type", "status", "says"),
    [
        ({}, "application/json", 400, "token: is required"),
        ({"token": 7}, "application/json", 400, "token: is required"),
        ({"token": "hunter2"}, "application/json", 400, "token: is not an admin API key"),
        (None, "text/plain", 400, "body: must be JSON"),
    ],
)
def test_sign_in_refuses_bad_input_naming_the_field(
    plane: RestPlane, body: Any, content_type: str, status: int, says: str
) -> None:
    raw = b"token=x" if body is None else httpx.Request("POST", "/", json=body).content
    answer = plane.http.post(
        "/console/session", content=raw, headers={"Content-Type": content_type}
    )
    assert answer.status_code == status
    assert says in answer.json()["error"]["message"]
    assert "set-cookie" not in answer.headers


def test_sign_in_refuses_unknown_data_plane_and_cross_origin_tokens(plane: RestPlane) -> None:
    data_plane = (plane.server.settings.data_dir / "data-plane.token").read_text().strip()
    unknown = tokens.mint(TokenKind.ADMIN)  # well-formed, never issued
    refused = [
        sign_in(plane, data_plane),
        sign_in(plane, unknown),
        sign_in(plane, plane.admin_token, Origin="https://evil.example"),
    ]
    assert [r.status_code for r in refused] == [400, 401, 403]
    assert "unknown or revoked token" in refused[1].json()["error"]["message"]
    for answer in refused:
        assert "set-cookie" not in answer.headers
        for secret in (data_plane, unknown, plane.admin_token):
            assert secret not in answer.text


def test_the_cookie_authenticates_reads_and_csrf_guards_writes(plane: RestPlane) -> None:
    cookie, csrf = session(plane)
    assert call(plane, "GET", "/provider-keys", cookie).status_code == 200
    before = plane.revision()
    for headers in (
        {},
        {"X-Keyway-CSRF": "not-the-sessions"},
        {"X-Keyway-CSRF": csrf, "Origin": "https://evil.example"},
    ):
        refused = call(plane, "POST", "/provider-keys", cookie, json=KEY, headers=headers)
        assert refused.status_code == 403
        assert "x-keyway-csrf" in refused.json()["error"]["message"]
        assert KEY["value"] not in refused.text
    assert plane.revision() == before
    created = call(
        plane,
        "POST",
        "/provider-keys",
        cookie,
        json=KEY,
        headers={"X-Keyway-CSRF": csrf, "Origin": plane.url},
    )
    assert created.status_code == 201
    assert created.json()["providerKey"]["redactedValue"] == "sk-proj-Co***WXYZ"


def test_a_bearer_token_wins_over_a_cookie(plane: RestPlane) -> None:
    answer = httpx.get(
        f"{plane.url}/provider-keys",
        cookies={COOKIE: "no-such-session"},
        headers=plane.headers(plane.admin_token),
    )
    assert answer.status_code == 200
    operator = httpx.get(
        f"{plane.url}/accounts",
        cookies={COOKIE: session(plane)[0]},
        headers=plane.headers(plane.operator_token),
    )
    assert operator.status_code == 200  # the admin session's token was not used


def test_a_stale_cookie_changes_nothing(plane: RestPlane) -> None:
    answer = call(plane, "GET", "/provider-keys", "no-such-session")
    assert answer.status_code == 401
    assert "missing authorization" in answer.json()["error"]["message"]
    assert call(plane, "GET", "/healthz", "no-such-session").status_code == 200
    assert call(plane, "GET", "/openapi.json", "no-such-session").status_code == 200
    session_of = call(plane, "GET", "/console/session", "no-such-session")
    assert session_of.status_code == 401
    assert "sign in again" in session_of.json()["error"]["message"]


def test_sign_out_needs_the_csrf_header_and_ends_the_session(plane: RestPlane) -> None:
    cookie, csrf = session(plane)
    assert call(plane, "DELETE", "/console/session", cookie).status_code == 403
    assert call(plane, "GET", "/console/session", cookie).status_code == 200
    out = call(plane, "DELETE", "/console/session", cookie, headers={"X-Keyway-CSRF": csrf})
    assert out.status_code == 204
    assert f'{COOKIE}=""' in out.headers["set-cookie"]
    assert call(plane, "GET", "/console/session", cookie).status_code == 401
    assert call(plane, "GET", "/provider-keys", cookie).status_code == 401


def test_a_revoked_admin_key_ends_its_sessions_at_once(plane: RestPlane) -> None:
    account = httpx.get(
        f"{plane.url}/accounts", headers=plane.headers(plane.operator_token)
    ).json()["accounts"][0]["id"]
    made = plane.http.post(
        f"/accounts/{account}/api-keys",
        json={"name": "short-lived"},
        headers=plane.headers(plane.operator_token),
    )
    assert made.status_code == 201, made.text
    signed_in = sign_in(plane, made.json()["token"])
    plane.http.cookies.clear()
    cookie = signed_in.cookies[COOKIE]
    assert call(plane, "GET", "/provider-keys", cookie).status_code == 200
    key_id = made.json()["adminApiKey"]["id"]
    deleted = plane.http.delete(f"/api-keys/{key_id}", headers=plane.headers(plane.operator_token))
    assert deleted.status_code == 204
    assert call(plane, "GET", "/provider-keys", cookie).status_code == 401


def test_pages_carry_a_strict_policy_and_the_root_leads_to_the_console(plane: RestPlane) -> None:
    home = plane.http.get("/", follow_redirects=False)
    assert home.status_code == 303
    assert home.headers["location"] == "/console/"
    for path in ("/console/", "/console/static/app.js", "/console/static/console.css"):
        page = plane.http.get(path)
        assert page.status_code == 200
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
    assert (
        plane.http.get("/console/static/app.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert plane.http.get("/console/static/../sessions.py").status_code == 404
    assert plane.http.get("/console/static/nothing.js").status_code == 404


def test_the_scripts_build_pages_from_text_nodes_only() -> None:
    """No inline script for the CSP to allow, and no API that parses strings as HTML."""
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", html) == [
        '<script type="module" src="/console/static/app.js">'
    ]
    for script in STATIC.glob("*.js"):
        code = script.read_text()
        for parser in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert parser not in code, f"{script.name} uses {parser}"
        for storage in ("localStorage", "sessionStorage", "indexedDB", "document.cookie"):
            assert storage not in code, f"{script.name} uses {storage}"


def test_an_operator_session_acts_in_an_account_through_its_own_admin_key(
    plane: RestPlane,
) -> None:
    signed_in = sign_in(plane, plane.operator_token)
    plane.http.cookies.clear()
    cookie, csrf = signed_in.cookies[COOKIE], signed_in.json()["csrf"]
    write = {"X-Keyway-CSRF": csrf}
    as_operator = {"X-Keyway-As": "operator"}
    assert call(plane, "GET", "/provider-keys", cookie).status_code == 403  # no account yet
    account = call(plane, "GET", "/accounts", cookie).json()["accounts"][0]["id"]
    made = call(
        plane,
        "POST",
        f"/accounts/{account}/api-keys",
        cookie,
        json={"name": "web console (operator)"},
        headers=write,
    ).json()
    body = {"token": made["token"], "keyId": made["adminApiKey"]["id"]}
    for headers, payload, status, says in [
        ({}, body, 403, "x-keyway-csrf"),
        (write, {**body, "token": plane.operator_token}, 400, "token: must be an admin API key"),
        (write, {"token": made["token"]}, 400, "keyId: is required"),
    ]:
        refused = call(
            plane, "PUT", "/console/session/account", cookie, json=payload, headers=headers
        )
        assert refused.status_code == status
        assert says in refused.json()["error"]["message"]
        assert made["token"] not in refused.text
    acting = call(plane, "PUT", "/console/session/account", cookie, json=body, headers=write)
    assert acting.status_code == 200
    assert acting.json()["actingAccountId"] == account
    assert made["token"] not in acting.text
    assert call(plane, "GET", "/provider-keys", cookie).status_code == 200
    assert call(plane, "GET", "/accounts", cookie).status_code == 403  # the account's key
    assert call(plane, "GET", "/accounts", cookie, headers=as_operator).status_code == 200
    left = call(plane, "DELETE", "/console/session/account", cookie, headers=write).json()
    assert left["leftKeyId"] == made["adminApiKey"]["id"]
    assert left["actingAccountId"] == ""
    assert call(plane, "GET", "/provider-keys", cookie).status_code == 403


def test_an_admin_session_cannot_switch_accounts(plane: RestPlane) -> None:
    cookie, csrf = session(plane)
    refused = call(
        plane,
        "PUT",
        "/console/session/account",
        cookie,
        json={"token": plane.admin_token, "keyId": "x"},
        headers={"X-Keyway-CSRF": csrf},
    )
    assert refused.status_code == 403
    assert "only an operator session" in refused.json()["error"]["message"]
