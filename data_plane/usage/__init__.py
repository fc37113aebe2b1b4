"""What the proxy observes of every request: attempt records, metrics, the request log.

A request's stages fill in a `RequestTrace`; when it ends, `Observer.finish` appends it to
a list, nothing more (with tracing, it also ends the request's spans, token counts
included). `Observer.digest` (every quarter second, before each shipment and
each scrape) hands the finished requests to the usage buffer the shipper drains
(`shipping`), to the metrics (`metrics`) and to the request log (`request_log`), so the
cost of all three stays off every request's latency. Each of them can be off.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .metrics import RequestMetrics
from .records import RequestTrace, settle
from .request_log import LogFormat, RequestLog
from .shipping import DEFAULT_CAPACITY, UsageBuffer

if TYPE_CHECKING:
    from .tracing import Tracing

log = logging.getLogger("keyway.data_plane.usage")

DIGEST_AT = 20_000
"""Finished requests held at most before `finish` digests them itself."""


@dataclass(frozen=True, slots=True)
class ObserveSettings:
    records: bool = True
    """Keep and ship attempt records (usage, request lookups, last used / last error)."""
    buffer_records: int = DEFAULT_CAPACITY
    """Records kept while the control plane is away; then the oldest are dropped."""
    metrics: bool = True
    metrics_key_labels: bool = False
    """Label request and attempt metrics with access key and provider key ids."""
    request_log: LogFormat = LogFormat.OFF
    otlp_endpoint: str = ""
    """Send OpenTelemetry spans here (OTLP/HTTP); empty: no tracing."""

    def __post_init__(self) -> None:
        if self.buffer_records < 1:
            raise ValueError("usage_buffer must be at least 1")


@dataclass(slots=True)
class Observer:
    buffer: UsageBuffer | None = None
    metrics: RequestMetrics | None = None
    log: RequestLog | None = None
    tracing: Tracing | None = None
    _finished: list[RequestTrace] = field(default_factory=list)
    counts_tokens: bool = field(init=False)
    """Whether anything reads token counts (else the relay skips looking for them)."""

    def __post_init__(self) -> None:
        parts = (self.buffer, self.metrics, self.log, self.tracing)
        self.counts_tokens = any(part is not None for part in parts)

    @classmethod
    def of(cls, settings: ObserveSettings) -> Observer:
        form = settings.request_log
        tracing = None
        if settings.otlp_endpoint:
            # Imported only here: OpenTelemetry is an optional extra.
            from .tracing import Tracing, otlp_processor

            tracing = Tracing(otlp_processor(settings.otlp_endpoint))
        return cls(
            UsageBuffer(settings.buffer_records) if settings.records else None,
            RequestMetrics(key_labels=settings.metrics_key_labels) if settings.metrics else None,
            None if form is LogFormat.OFF else RequestLog(form, sys.stdout),
            tracing,
        )

    def finish(self, trace: RequestTrace) -> None:
        if self.buffer is not None or self.metrics is not None or self.log is not None:
            self._finished.append(trace)
        if self.tracing is not None and trace.span is not None:
            settle(trace)  # its spans end now, with their token counts
            self.tracing.finish(trace)
        if len(self._finished) >= DIGEST_AT:
            self.digest()  # a loop too busy for the digest task stays bounded anyway

    def digest(self) -> None:
        """Hands the requests finished since the last call to the buffer, metrics and log.

        One loop for each of them (not one loop handing each request to all three in
        turn, which measured slower: each loop's code stays in the CPU's caches). Never
        raises: one that fails (a bug, a closed stdout) is logged and costs only its own
        share of these requests; the others, and every later digest, go on."""
        done, self._finished = self._finished, []
        if not done:
            return
        for trace in done:
            settle(trace)
        steps = (
            ("records", self.buffer.add_all if self.buffer is not None else None),
            ("metrics", self.metrics.observe_all if self.metrics is not None else None),
            ("request log", self.log.write if self.log is not None else None),
        )
        for name, step in steps:
            if step is None:
                continue
            try:
                step(done)
            except Exception:
                log.exception("usage digest: %s of %d requests lost", name, len(done))
