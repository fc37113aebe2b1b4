"""The API surfaces the proxy speaks, and where each goes upstream."""

from __future__ import annotations

from dataclasses import dataclass

from data_plane.routing.table import ANTHROPIC, OPENAI

from .errors import Format


@dataclass(frozen=True, slots=True)
class Surface:
    path: str
    upstream_suffix: str
    """Appended to the provider's base URL (which ends in its version segment)."""
    format: Format

    @property
    def provider_format(self) -> str:
        return ANTHROPIC if self.format is Format.ANTHROPIC else OPENAI


SURFACES = (
    Surface("/v1/chat/completions", "/chat/completions", Format.OPENAI),
    Surface("/v1/responses", "/responses", Format.OPENAI),
    Surface("/v1/embeddings", "/embeddings", Format.OPENAI),
    Surface("/v1/messages", "/messages", Format.ANTHROPIC),
    # Anthropic's token counting: routed, scoped and failed over like a Messages call.
    Surface("/v1/messages/count_tokens", "/messages/count_tokens", Format.ANTHROPIC),
)
