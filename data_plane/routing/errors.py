"""Keyway's own errors: one catalog of codes, each with its HTTP status and what to check.

Every refusal the proxy makes names a code from `CATALOG`; `http.errors` renders it in
the envelope of the surface the client called. The README's error table is generated
from this catalog (a test keeps the two in sync).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    status: int
    meaning: str
    check: str


CATALOG: dict[str, CatalogEntry] = {
    "missing_access_key": CatalogEntry(
        401,
        "No access key was sent.",
        "Send `Authorization: Bearer <access key>` or `x-api-key: <access key>`.",
    ),
    "malformed_access_key": CatalogEntry(
        401,
        "The access key is not a Keyway access key (prefix, length or checksum).",
        "Copy the whole `kwak_…` token; provider keys go into Keyway, not into the app.",
    ),
    "invalid_access_key": CatalogEntry(
        401,
        "The access key is unknown or was revoked.",
        "`keyway admin access-keys list`; create a new key if it was deleted.",
    ),
    "access_key_disabled": CatalogEntry(
        401,
        "The access key is disabled (paused, not revoked).",
        "`keyway admin access-keys enable <id>`; `access-keys list` shows which are disabled.",
    ),
    "not_ready": CatalogEntry(
        503,
        "This proxy has no routing snapshot yet.",
        "Check the proxy can reach the control plane (`/readyz`, `keyway admin data-planes list`).",
    ),
    "snapshot_expired": CatalogEntry(
        503,
        "This proxy's routing snapshot has gone unconfirmed for longer than `--max-snapshot-age`.",
        "The proxy cannot get updates from the control plane: see its log and `/readyz`.",
    ),
    "invalid_json": CatalogEntry(
        400,
        "The request body is not a JSON object.",
        "Send `Content-Type: application/json` with an object body.",
    ),
    "request_too_large": CatalogEntry(
        413,
        "The request body is larger than the proxy accepts.",
        "Reduce the body or raise `--max-body-bytes` on the proxy.",
    ),
    "missing_model": CatalogEntry(
        400, "The body has no `model`.", "Set `model`, e.g. `gpt-4o` or `openai:gpt-4o`."
    ),
    "invalid_model": CatalogEntry(
        400,
        "`model` has control characters or is longer than 256 characters.",
        "Send a plain model id such as `gpt-4o` or `openai:gpt-4o`.",
    ),
    "invalid_models": CatalogEntry(
        400,
        "`models` must be an array of at most 10 model id strings.",
        'Send `models: ["anthropic:claude-sonnet-4-5", …]` as a fallback list.',
    ),
    "duplicate_key": CatalogEntry(
        400,
        "A top-level key (such as `model`) appears twice in the JSON body.",
        "Send each member once; providers disagree on which copy counts.",
    ),
    "unknown_model": CatalogEntry(
        400,
        "A bare model id is not in the catalog.",
        "Use `provider:model` for unlisted models; `GET /v1/models` lists known ids.",
    ),
    "unknown_provider": CatalogEntry(
        400,
        "The `provider:` prefix names no provider.",
        "`keyway admin providers list` shows built-in and custom provider ids.",
    ),
    "unsupported_format": CatalogEntry(
        400,
        "No candidate provider speaks this endpoint's API format.",
        "Call Anthropic models on `/v1/messages`, OpenAI-format ones on the `/v1/…` OpenAI paths.",
    ),
    "provider_not_allowed": CatalogEntry(
        403,
        "The access key's configuration does not allow this provider.",
        "`access.providers.allow` of the linked configuration.",
    ),
    "model_not_allowed": CatalogEntry(
        403,
        "The access key's configuration does not allow this model.",
        "`access.models.allow` of the linked configuration.",
    ),
    "concurrency_limit": CatalogEntry(
        429,
        "Too many requests in flight for this access key or account on this proxy.",
        "Wait for `Retry-After`; see `--max-concurrency-per-access-key` / `-per-account` and "
        "the configuration's `limits.concurrency`.",
    ),
    "rate_limit_exceeded": CatalogEntry(
        429,
        "The access key is over the requests per minute its configuration allows.",
        "Wait for `Retry-After`, or raise `limits.requestsPerMinute` in the configuration.",
    ),
    "no_provider_key": CatalogEntry(
        502,
        "The account has no enabled provider key for the provider.",
        "`keyway admin provider-keys create --provider …` (or `enable` one), or the router rules.",
    ),
    "all_rate_limited": CatalogEntry(
        429,
        "Every provider key tried was rate-limited.",
        "Add keys or wait for `Retry-After`; `keyway admin provider-keys list` shows last errors.",
    ),
    "deadline_exceeded": CatalogEntry(
        504,
        "The total deadline passed before an upstream answered.",
        "Upstream latency; raise `--total-deadline` on the proxy if needed.",
    ),
    "all_attempts_failed": CatalogEntry(
        502,
        "Every attempt failed (auth errors, 5xx, timeouts, connection errors).",
        "The attempts listed in the error; `keyway admin provider-keys list` shows last errors.",
    ),
    "upstream_stream_error": CatalogEntry(
        502,
        "The upstream stream broke or stalled after the response had started.",
        "Retry the request; the answer so far is incomplete.",
    ),
    "stream_too_long": CatalogEntry(
        502,
        "The upstream response ran longer than the proxy's maximum stream duration.",
        "Ask for shorter answers, or raise `--max-stream-duration` on the proxy.",
    ),
    "request_timeout": CatalogEntry(
        408,
        "The client sent the request headers or body too slowly.",
        "Network between client and proxy; `--header-read-timeout`, `--body-read-timeout`.",
    ),
    "headers_too_large": CatalogEntry(
        431,
        "The request line and headers are larger than the proxy accepts.",
        "Send fewer or smaller headers, or raise `--max-header-bytes` on the proxy.",
    ),
    "overloaded": CatalogEntry(
        503,
        "This proxy is at its connection limit.",
        "Retry on another proxy or later; `--max-connections` on the proxy.",
    ),
    "not_found": CatalogEntry(404, "No such endpoint.", "See the list of surfaces in the README."),
    "method_not_allowed": CatalogEntry(
        405,
        "This endpoint does not accept that method.",
        "Model calls are POST; `/v1/models` is GET.",
    ),
}


@dataclass
class KeywayError(Exception):
    # Not frozen: Python code (contextlib, asyncio) assigns __traceback__ on raise.
    code: str
    message: str
    param: str | None = None
    extra: dict[str, object] | None = None
    """Extra members of the error object (e.g. the attempts list)."""

    @property
    def status(self) -> int:
        return CATALOG[self.code].status


def catalog_markdown() -> str:
    """The README's error table, so the documentation cannot drift from the code."""
    rows = ["| Code | Status | Meaning | What to check |", "|---|---|---|---|"]
    rows += [
        f"| `{code}` | {entry.status} | {entry.meaning} | {entry.check} |"
        for code, entry in CATALOG.items()
    ]
    return "\n".join(rows)
