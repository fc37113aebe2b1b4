"""The console's routes (pages, assets, the session) and the layer that authenticates
REST calls made with a session cookie (see the package docstring)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from control_plane.api.errors import to_status
from control_plane.domain import tokens
from control_plane.domain.errors import (
    DomainError,
    InvalidArgument,
    PermissionDenied,
    Unauthenticated,
)
from control_plane.domain.tokens import TokenKind
from control_plane.http.errors import error_body

from .sessions import Acting, Session, Sessions

log = logging.getLogger("keyway.control_plane.console")

COOKIE = "keyway_session"
CSRF_HEADER = "x-keyway-csrf"
AS_OPERATOR_HEADER = "x-keyway-as"
"""`operator`: a call the console makes with the operator token while acting in an account."""
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

Authenticate = Callable[[str], Awaitable[tuple[TokenKind, str | None] | None]]
"""(kind, account id) of a token the store knows, else None."""


def _assets() -> dict[str, tuple[bytes, str]]:
    found: dict[str, tuple[bytes, str]] = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = entry.name[entry.name.rfind(".") :]
        if entry.is_file() and suffix in _TYPES:
            found[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    return found


def _error(error: DomainError, http: int | None = None) -> Response:
    body = error_body(to_status(error)[1], http)
    data = json.dumps(body, separators=(",", ":")).encode()
    return Response(data, body["error"]["code"], SECURITY_HEADERS, "application/json")


def _origin_ok(scope: Scope, origin: str | None) -> bool:
    """A browser's `Origin` must be this listener's; clients that send none pass."""
    if origin is None:
        return True
    host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
    return origin == f"{scope.get('scheme', 'http')}://{host}"


class Console:
    """The console part of the HTTP listener: `routes` mount before the REST API, and
    `guard` wraps the whole app."""

    def __init__(self, authenticate: Authenticate, sessions: Sessions) -> None:
        self._authenticate = authenticate
        self.sessions = sessions
        self._assets = _assets()
        self.routes: list[BaseRoute] = [
            Route("/", self._home, methods=["GET"]),
            Route("/console", self._home, methods=["GET"]),
            Route("/console/", self._page, methods=["GET"]),
            Route("/console/static/{name}", self._asset, methods=["GET"]),
            Route("/console/session", self._session, methods=["GET", "POST", "DELETE"]),
            Route("/console/session/account", self._account, methods=["PUT", "DELETE"]),
        ]

    def guard(self, app: ASGIApp) -> ASGIApp:
        return SessionAuth(app, self.sessions)

    async def _home(self, _: Request) -> Response:
        return RedirectResponse("/console/", 303, SECURITY_HEADERS)

    async def _page(self, _: Request) -> Response:
        body, media = self._assets["index.html"]
        return Response(body, 200, SECURITY_HEADERS, media)

    async def _asset(self, request: Request) -> Response:
        found = self._assets.get(request.path_params["name"])
        if found is None:
            return Response(b"not found", 404, SECURITY_HEADERS, "text/plain")
        return Response(found[0], 200, SECURITY_HEADERS, found[1])

    async def _session(self, request: Request) -> Response:
        try:
            if request.method == "POST":
                return await self._sign_in(request)
            session = self.sessions.find(request.cookies.get(COOKIE))
            if session is None:
                raise Unauthenticated("not signed in (or the session expired): sign in again")
            if request.method == "DELETE":
                return self._sign_out(request, session)
            return _session_json(session, 200)
        except DomainError as error:
            return _error(error)

    async def _account(self, request: Request) -> Response:
        """An operator session acts in an account (PUT, with an admin API key the console
        made for it through the REST API) or returns to the operator's view (DELETE, which
        answers the key's id so that the console deletes it)."""
        try:
            session = self.sessions.find(request.cookies.get(COOKIE))
            if session is None:
                raise Unauthenticated("not signed in (or the session expired): sign in again")
            if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
                raise PermissionDenied(f"switching accounts needs the {CSRF_HEADER} header")
            if session.kind != "operator":
                raise PermissionDenied("only an operator session switches accounts")
            if request.method == "DELETE":
                left = session.acting
                changed = self.sessions.act(session.id, None)
                assert changed is not None
                return _session_json(changed, 200, left.key_id if left else "")
            body = await _json_body(request)
            token, key_id = body.get("token"), body.get("keyId")
            if not isinstance(key_id, str) or not key_id:
                raise InvalidArgument.field("keyId", "is required: the admin API key's id")
            if not isinstance(token, str) or tokens.kind_of(token) is not TokenKind.ADMIN:
                raise InvalidArgument.field("token", "must be an admin API key (kwadm_…)")
            found = await self._authenticate(token)
            if found is None or found[1] is None:
                raise Unauthenticated("unknown or revoked token")
            changed = self.sessions.act(session.id, Acting(found[1], key_id, token))
            assert changed is not None
            return _session_json(changed, 200)
        except DomainError as error:
            return _error(error)

    async def _sign_in(self, request: Request) -> Response:
        if not _origin_ok(request.scope, request.headers.get("origin")):
            raise PermissionDenied("sign-in from another origin is refused")
        token = (await _json_body(request)).get("token")
        if not isinstance(token, str) or not token.strip():
            raise InvalidArgument.field(
                "token", "is required: an admin API key or the operator token"
            )
        token = token.strip()
        if tokens.kind_of(token) not in (TokenKind.ADMIN, TokenKind.OPERATOR):
            raise InvalidArgument.field(
                "token", "is not an admin API key (kwadm_…) or an operator token (kwop_…)"
            )
        found = await self._authenticate(token)
        if found is None:
            raise Unauthenticated("unknown or revoked token")
        kind, account_id = found
        session = self.sessions.open(
            token, "operator" if kind is TokenKind.OPERATOR else "admin", account_id
        )
        response = _session_json(session, 201)
        response.set_cookie(
            COOKIE,
            session.id,
            max_age=int(session.expires_at - self.sessions.now()),
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        log.info("console sign-in (%s)", session.kind)
        return response

    def _sign_out(self, request: Request, session: Session) -> Response:
        if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            raise PermissionDenied(f"sign-out needs the {CSRF_HEADER} header of the session")
        self.sessions.close(session.id)
        response = Response(status_code=204, headers=SECURITY_HEADERS)
        response.delete_cookie(
            COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
        )
        return response


async def _json_body(request: Request) -> dict[str, Any]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise InvalidArgument.field("body", 'must be JSON ({"token": …})')
    try:
        body: Any = json.loads(await request.body())
    except ValueError:
        raise InvalidArgument.field("body", "is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidArgument.field("body", "must be a JSON object")
    return body


def _session_json(session: Session, status: int, left_key_id: str = "") -> Response:
    """What the console's scripts know of their session: never a token."""
    body: dict[str, Any] = {
        "kind": session.kind,
        "accountId": session.account_id or "",
        "actingAccountId": session.acting.account_id if session.acting else "",
        "actingKeyId": session.acting.key_id if session.acting else "",
        "expiresAt": session.expires_at,
        "csrf": session.csrf,
    }
    if left_key_id:
        body["leftKeyId"] = left_key_id
    return Response(json.dumps(body).encode(), status, SECURITY_HEADERS, "application/json")


class SessionAuth:
    """REST calls carrying the session cookie (and no `Authorization`) act as its token."""

    def __init__(self, app: ASGIApp, sessions: Sessions) -> None:
        self._app = app
        self._sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or str(scope["path"]).startswith("/console"):
            await self._app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        names = {k for k, _ in headers}
        cookie = _cookie(headers)
        if b"authorization" in names or cookie is None:
            await self._app(scope, receive, send)
            return
        session = self._sessions.find(cookie)
        if session is None:
            # A stale cookie changes nothing: health and the OpenAPI document still answer,
            # and the REST API asks for credentials as it does without one.
            await self._app(scope, receive, send)
            return
        refusal = self._refusal(scope, headers, session)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        assert session is not None
        # In place: the request log reads the same scope to name the caller.
        as_operator = any(k == AS_OPERATOR_HEADER.encode() and v == b"operator" for k, v in headers)
        token = session.token_for(as_operator)
        scope["headers"] = [*headers, (b"authorization", f"Bearer {token}".encode())]
        await self._app(scope, receive, send)

    @staticmethod
    def _refusal(
        scope: Scope, headers: list[tuple[bytes, bytes]], session: Session
    ) -> Response | None:
        if scope["method"] in _SAFE:
            return None
        origin = next((v.decode("latin-1") for k, v in headers if k == b"origin"), None)
        sent = next((v.decode("latin-1") for k, v in headers if k == CSRF_HEADER.encode()), None)
        if not _origin_ok(scope, origin) or not session.csrf_matches(sent):
            return _error(
                PermissionDenied(
                    f"a write with the console's session cookie needs its {CSRF_HEADER} "
                    "header and this origin"
                )
            )
        return None


def _cookie(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key != b"cookie":
            continue
        for part in value.decode("latin-1").split(";"):
            name, _, content = part.strip().partition("=")
            if name == COOKIE:
                return content
    return None
