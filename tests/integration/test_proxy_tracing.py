"""OpenTelemetry spans (the optional `tracing` extra), with the SDK's in-memory exporter.

A client's `traceparent` makes the request span its child; every attempt is a child of
the request span, and its own `traceparent` reaches the provider.
"""

from __future__ import annotations

from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from data_plane.mock_upstream import app as mock_app
from data_plane.usage import Observer
from data_plane.usage.shipping import UsageBuffer
from data_plane.usage.tracing import Tracing
from tests.unit import snapshots as s

from .asgi_gateway import Tenant, access_token, asgi_gateway

TOKEN = access_token("T")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
KEYS = (
    s.key("pk_busy", "openai", "sk-mock-429-30-trace"),
    s.key("pk_ok", "openai", "sk-mock-ok-trace"),
)
CONFIG = s.configuration("akc_t", routes=[s.route("openai", "", ["pk_busy", "pk_ok"])])


async def test_spans_per_request_and_attempt_join_the_clients_trace() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(SimpleSpanProcessor(exporter))
    observer = Observer(UsageBuffer(), tracing=tracing)
    recorded = mock_app._RECORDED_HEADERS | {"traceparent"}
    setattr(mock_app, "_RECORDED_HEADERS", recorded)  # noqa: B010 - see what the mock got
    try:
        async with asgi_gateway([Tenant(TOKEN, KEYS, CONFIG)], observer=observer) as gw:
            response = await gw.http.post(
                "/v1/chat/completions",
                headers={
                    "authorization": f"Bearer {TOKEN}",
                    "traceparent": f"00-{TRACE_ID}-{CLIENT_SPAN}-01",
                },
                json={"model": "gpt-4o", "messages": [{"role": "user", "content": "secret text"}]},
            )
            upstream = [r.headers.get("traceparent") for r in gw.mock.app.requests]
    finally:
        setattr(mock_app, "_RECORDED_HEADERS", recorded - {"traceparent"})  # noqa: B010
    assert response.status_code == 200
    spans = {span.name: span for span in exporter.get_finished_spans()}
    request = spans["POST /v1/chat/completions"]
    first, second = spans["attempt 1 openai"], spans["attempt 2 openai"]
    assert request.kind is SpanKind.SERVER
    assert f"{request.context.trace_id:032x}" == TRACE_ID
    assert request.parent is not None
    assert f"{request.parent.span_id:016x}" == CLIENT_SPAN
    for attempt in (first, second):
        assert attempt.kind is SpanKind.CLIENT
        assert attempt.parent is not None
        assert attempt.parent.span_id == request.context.span_id
    assert first.attributes is not None
    assert first.attributes["keyway.outcome"] == "rate_limited"
    assert first.status.status_code is StatusCode.ERROR
    assert second.attributes is not None
    assert second.attributes["keyway.provider_key_id"] == "pk_ok"
    assert isinstance(second.attributes["keyway.output_tokens"], int)
    assert second.attributes["keyway.output_tokens"] > 0
    assert request.attributes is not None
    assert request.attributes["keyway.request_id"] == response.headers["x-keyway-request-id"]
    # Each attempt's own span went upstream as its traceparent.
    assert upstream == [
        f"00-{TRACE_ID}-{first.context.span_id:016x}-01",
        f"00-{TRACE_ID}-{second.context.span_id:016x}-01",
    ]
    everything = repr([span.to_json() for span in exporter.get_finished_spans()])
    for secret in ("sk-mock-429-30-trace", "sk-mock-ok-trace", TOKEN, "secret text"):
        assert secret not in everything
    tracing.shutdown()


async def test_without_a_traceparent_the_request_starts_a_trace() -> None:
    exporter = InMemorySpanExporter()
    tracing = Tracing(SimpleSpanProcessor(exporter))
    observer = Observer(tracing=tracing)
    async with asgi_gateway([Tenant(TOKEN, KEYS, CONFIG)], observer=observer) as gw:
        await gw.http.post(
            "/v1/chat/completions",
            headers={"authorization": f"Bearer {access_token('U')}"},
            json={"model": "gpt-4o", "messages": []},
        )
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "invalid_access_key"
    tracing.shutdown()
