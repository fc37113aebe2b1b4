"""OpenTelemetry spans per request and per upstream attempt (`keyway proxy --otlp-endpoint`).

Optional: needs the `tracing` extra (`pip install 'keyway[tracing]'`, i.e.
`opentelemetry-sdk` and the OTLP/HTTP exporter); without `--otlp-endpoint` nothing here
runs. A client's W3C `traceparent` (and `tracestate`) makes the request span its child;
each attempt is a child span of the request, and its `traceparent` goes upstream, so a
provider or an egress proxy that traces joins the same trace. Spans carry ids, outcomes,
statuses and token counts, never a key value, a prompt or a completion. Attempt spans
end when the request does, with the times the trace measured.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from .records import SUCCESS, AttemptTrace, RequestTrace

_PROPAGATOR = TraceContextTextMapPropagator()
_CARRIED = (b"traceparent", b"tracestate")


def otlp_processor(endpoint: str) -> SpanProcessor:
    """Batches spans to an OTLP/HTTP collector, e.g. `http://127.0.0.1:4318/v1/traces`."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))


class Tracing:
    def __init__(self, processor: SpanProcessor, service: str = "keyway-proxy") -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(processor)
        self._tracer = self.provider.get_tracer("keyway.proxy")

    def request(self, headers: Any, trace_: RequestTrace) -> Span:
        carrier = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in headers
            if name in _CARRIED
        }
        return self._tracer.start_span(
            f"POST {trace_.surface}",
            context=_PROPAGATOR.extract(carrier),
            kind=SpanKind.SERVER,
            attributes={"keyway.request_id": trace_.request_id, "http.route": trace_.surface},
        )

    def attempt(self, parent: Span, attempt: AttemptTrace, upstream: dict[str, str]) -> Span:
        """The attempt's span; its `traceparent` is added to the upstream headers."""
        span = self._tracer.start_span(
            f"attempt {attempt.attempt} {attempt.provider_id}",
            context=trace.set_span_in_context(parent),
            kind=SpanKind.CLIENT,
            attributes={
                "keyway.attempt": attempt.attempt,
                "keyway.provider": attempt.provider_id,
                "keyway.upstream_model": attempt.upstream_model,
                "keyway.provider_key_id": attempt.provider_key_id,
            },
        )
        _PROPAGATOR.inject(upstream, context=trace.set_span_in_context(span))
        return span

    def finish(self, trace_: RequestTrace) -> None:
        span: Span = trace_.span  # type: ignore[assignment]
        # The trace's timer and the wall clock, lined up once: spans end at the times measured.
        now_ns, timer = time.time_ns(), time.perf_counter()

        def at(seconds: float) -> int:
            return now_ns - int((timer - seconds) * 1e9)

        for attempt in trace_.attempts:
            attempt_span: Span | None = attempt.span  # type: ignore[assignment]
            if attempt_span is None:
                continue
            attempt_span.set_attribute("keyway.outcome", attempt.outcome)
            if attempt.status:
                attempt_span.set_attribute("http.response.status_code", attempt.status)
            if attempt.tokens is not None:
                attempt_span.set_attribute("keyway.input_tokens", attempt.tokens.input)
                attempt_span.set_attribute("keyway.output_tokens", attempt.tokens.output)
            if attempt.outcome != SUCCESS:
                attempt_span.set_status(Status(StatusCode.ERROR, attempt.reason))
            attempt_span.end(at(attempt.ended_at or trace_.ended))
        span.set_attribute("keyway.account_id", trace_.account_id)
        span.set_attribute("keyway.access_key_id", trace_.access_key_id)
        span.set_attribute("keyway.attempts", len(trace_.attempts))
        if trace_.status:
            span.set_attribute("http.response.status_code", trace_.status)
        if trace_.error:
            span.set_status(Status(StatusCode.ERROR, trace_.error))
        span.end(at(trace_.ended))

    def shutdown(self) -> None:
        self.provider.shutdown()
