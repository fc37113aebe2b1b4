"""`GET /v1/models`: the models an access key may call, in the caller's SDK's shape."""

from __future__ import annotations

import json
import time

from data_plane.formats import ApiFormat
from data_plane.routing.authenticate import authenticate
from data_plane.routing.errors import KeywayError
from data_plane.routing.models import callable_models

from .context import ProxyContext
from .errors import send_error
from .types import Headers, Scope, Send


def openai_list(models: list[tuple[str, str]]) -> bytes:
    data = [{"id": m, "object": "model", "created": 0, "owned_by": p} for m, p in models]
    return json.dumps({"object": "list", "data": data}).encode()


def anthropic_list(models: list[tuple[str, str]]) -> bytes:
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "1970-01-01T00:00:00Z"}
        for m, _ in models
    ]
    return json.dumps(
        {
            "data": data,
            "has_more": False,
            "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None,
        }
    ).encode()


async def list_models(
    ctx: ProxyContext, scope: Scope, send: Send, fmt: ApiFormat, headers: Headers
) -> None:
    try:
        caller = authenticate(ctx.state.serving(time.monotonic()), scope["headers"])
    except KeywayError as error:
        await send_error(send, error, fmt, headers)
        return
    models = callable_models(caller)
    body = anthropic_list(models) if fmt is ApiFormat.ANTHROPIC else openai_list(models)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [*headers, (b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})
