"""The ASGI vocabulary of the proxy's HTTP layer: every module imports it, none redefines it.

The shapes are those of the ASGI specification (and of Starlette's, so the two mix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Headers = list[tuple[bytes, bytes]]
"""Raw header pairs as ASGI carries them (names lowercased)."""
