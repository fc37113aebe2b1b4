"""The API surfaces the proxy speaks, and where each goes upstream."""

from __future__ import annotations

from dataclasses import dataclass

from data_plane.formats import ApiFormat

from .sse import EventStyle


@dataclass(frozen=True, slots=True)
class Surface:
    path: str
    upstream_suffix: str
    """Appended to the provider's base URL (which ends in its version segment)."""
    format: ApiFormat
    events: EventStyle
    """How a stream on this surface reports an error."""
    query: frozenset[str] = frozenset()
    """Query parameters the provider API defines for this call; others are dropped."""


SURFACES = (
    Surface("/v1/chat/completions", "/chat/completions", ApiFormat.OPENAI, EventStyle.CHAT),
    Surface("/v1/responses", "/responses", ApiFormat.OPENAI, EventStyle.RESPONSES),
    Surface("/v1/embeddings", "/embeddings", ApiFormat.OPENAI, EventStyle.CHAT),
    # The Anthropic SDK's beta client posts to `/v1/messages?beta=true`.
    Surface(
        "/v1/messages",
        "/messages",
        ApiFormat.ANTHROPIC,
        EventStyle.MESSAGES,
        frozenset({"beta"}),
    ),
    # Anthropic's token counting: routed, scoped and failed over like a Messages call.
    Surface(
        "/v1/messages/count_tokens",
        "/messages/count_tokens",
        ApiFormat.ANTHROPIC,
        EventStyle.MESSAGES,
        frozenset({"beta"}),
    ),
)
