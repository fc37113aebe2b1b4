"""The proxy's Prometheus metrics, exposed with `prometheus_client`.

The request path pays for plain dict and list updates only (`RequestMetrics.observe`,
once per request, on the event loop, so without locks); a collector turns them into
metric families when `/metrics` is scraped, together with what is read at that moment:
active streams, keys in cooldown, the usage buffer and the snapshot gauges.

Labels are bounded by the routing data (surface path, provider id, upstream model,
outcome kind, status class); key ids are labels only with `key_labels`
(`keyway proxy --metrics-key-labels`), because one series per key grows with tenants.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from data_plane.routing.cooldowns import Cooldowns
from data_plane.snapshot.state import SnapshotState

from .records import SUCCESS, RequestTrace
from .shipping import UsageBuffer

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_ADDED = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
_TOKEN_KINDS = ("input", "output", "cached_input", "reasoning")
"""`Tokens`' fields, in order, as the `kind` label."""
_STATUS_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}


class _Histogram:
    __slots__ = ("bounds", "series")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, labels: tuple[str, ...], value: float) -> None:
        found = self.series.get(labels)
        if found is None:
            found = self.series[labels] = ([0] * (len(self.bounds) + 1), [0.0])
        found[0][bisect_left(self.bounds, value)] += 1
        found[1][0] += value

    def family(self, name: str, doc: str, label_names: list[str]) -> HistogramMetricFamily:
        family = HistogramMetricFamily(name, doc, labels=label_names)
        for labels, (counts, total) in self.series.items():
            running, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), counts, strict=True):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            family.add_metric(list(labels), buckets, total[0])
        return family


class RequestMetrics:
    """What requests add up to; fed one finished `RequestTrace` at a time."""

    def __init__(self, *, key_labels: bool = False) -> None:
        self.key_labels = key_labels
        self.requests: dict[tuple[str, ...], float] = {}
        self.attempts: dict[tuple[str, ...], float] = {}
        self.failovers: dict[tuple[str, ...], float] = {}
        self.tokens: dict[tuple[str, str], list[int]] = {}
        """By provider and model: counts in `Tokens` order (labelled by kind when scraped)."""
        self.duration = _Histogram(_SECONDS)
        self.first_byte = _Histogram(_SECONDS)
        self.added = _Histogram(_ADDED)
        self.active_streams = 0

    def observe_all(self, traces: list[RequestTrace]) -> None:
        observe = self.observe
        for trace in traces:
            observe(trace)

    def observe(self, trace: RequestTrace) -> None:
        # Plain dict updates, inlined: this runs once per request.
        attempts = trace.attempts
        last = attempts[-1] if attempts else None
        status = trace.status
        status_class = _STATUS_CLASSES.get(status // 100, "none") if status else "none"
        key_labels = self.key_labels
        if last is None:
            key: tuple[str, ...] = (trace.surface, "", "", status_class)
        else:
            key = (trace.surface, last.provider_id, last.upstream_model, status_class)
        if key_labels:
            key += (trace.access_key_id,)
        requests = self.requests
        requests[key] = requests.get(key, 0) + 1
        total = trace.ended - trace.started
        self.duration.observe((trace.surface,), total)
        upstream = 0.0
        counts, tokens_total = self.attempts, self.tokens
        for a in attempts:
            provider = a.provider_id
            key = (provider, a.outcome, a.provider_key_id) if key_labels else (provider, a.outcome)
            counts[key] = counts.get(key, 0) + 1
            if a is not last:
                key = (provider,)
                self.failovers[key] = self.failovers.get(key, 0) + 1
            if a.first_byte_at:
                self.first_byte.observe((provider,), a.first_byte_at - a.started)
            upstream += (a.ended_at or trace.ended) - a.started
            tokens = a.tokens
            if tokens is not None:
                model_key = (provider, a.upstream_model)
                sums = tokens_total.get(model_key)
                if sums is None:
                    sums = tokens_total[model_key] = [0, 0, 0, 0]
                sums[0] += tokens[0]
                sums[1] += tokens[1]
                sums[2] += tokens[2]
                sums[3] += tokens[3]
        if last is not None and last.outcome == SUCCESS:
            self.added.observe((), max(0.0, total - upstream))


class _Collector(Collector):
    def __init__(
        self,
        metrics: RequestMetrics | None,
        state: SnapshotState,
        cooldowns: Cooldowns,
        buffer: UsageBuffer | None,
        clock: Callable[[], float],
    ) -> None:
        self._metrics = metrics
        self._state = state
        self._cooldowns = cooldowns
        self._buffer = buffer
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        yield from _snapshot_families(self._state, time.time(), time.monotonic())
        held = GaugeMetricFamily("keyway_keys_in_cooldown", "provider keys held back now")
        held.add_metric([], self._cooldowns.count_held(self._clock()))
        yield held
        if self._buffer is not None:
            yield GaugeMetricFamily(
                "keyway_usage_buffer_records",
                "attempt records waiting to be shipped to the control plane",
                value=len(self._buffer),
            )
            yield CounterMetricFamily(
                "keyway_usage_dropped_records",
                "attempt records dropped, oldest first, because the buffer was full",
                value=self._buffer.dropped,
            )
        m = self._metrics
        if m is None:
            return
        key = ["access_key_id"] if m.key_labels else []
        yield _counter(
            "keyway_requests",
            "model calls answered, by the provider and model of their last attempt",
            ["surface", "provider", "model", "status_class", *key],
            m.requests,
        )
        yield _counter(
            "keyway_attempts",
            "upstream attempts by outcome (success or why it failed)",
            ["provider", "outcome", *(["provider_key_id"] if m.key_labels else [])],
            m.attempts,
        )
        yield _counter(
            "keyway_failovers", "attempts followed by another one", ["provider"], m.failovers
        )
        by_kind: dict[tuple[str, ...], float] = {
            (provider, model, kind): count
            for (provider, model), sums in m.tokens.items()
            for kind, count in zip(_TOKEN_KINDS, sums, strict=True)
            if count
        }
        yield _counter(
            "keyway_tokens", "tokens providers reported", ["provider", "model", "kind"], by_kind
        )
        yield m.duration.family(
            "keyway_request_duration_seconds", "model calls, arrival to last byte", ["surface"]
        )
        yield m.first_byte.family(
            "keyway_upstream_first_byte_seconds",
            "from sending an attempt to its first body bytes",
            ["provider"],
        )
        yield m.added.family(
            "keyway_gateway_added_seconds",
            "time a served request spent in the proxy outside upstream attempts",
            [],
        )
        active = GaugeMetricFamily("keyway_active_streams", "SSE answers being relayed now")
        active.add_metric([], m.active_streams)
        yield active


def _counter(
    name: str, doc: str, labels: list[str], values: dict[tuple[str, ...], float]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for key, value in values.items():
        family.add_metric(list(key), value)
    return family


def _snapshot_families(state: SnapshotState, now: float, monotonic: float) -> Iterator[Metric]:
    m = state.metrics
    age = now - m.generated_at if m.generated_at else (now - m.applied_at if m.applied_at else 0.0)
    gauges = (
        ("keyway_snapshot_connected", "1 while the discovery stream is up", int(m.connected)),
        ("keyway_snapshot_applied_version", "version of the served snapshot", m.applied_version),
        ("keyway_snapshot_age_seconds", "seconds since the served snapshot was compiled", age),
        (
            "keyway_snapshot_propagation_seconds",
            "applied time minus compile time, last snapshot",
            m.propagation_seconds,
        ),
        (
            "keyway_snapshot_from_cache",
            "1 while serving a snapshot loaded from the disk cache",
            int(m.loaded_from_cache),
        ),
        (
            "keyway_snapshot_updates_failing",
            "1 while this proxy cannot get or apply snapshot updates",
            int(m.updates_failing),
        ),
        (
            "keyway_snapshot_unconfirmed_seconds",
            "seconds since the served snapshot was last known to be current (0 while it is)",
            state.stale_seconds(monotonic),
        ),
    )
    for name, doc, value in gauges:
        yield GaugeMetricFamily(name, doc, value=value)
    counters = (
        ("keyway_snapshot_applies", "snapshots applied", m.applies),
        ("keyway_snapshot_rejections", "snapshots rejected (NACKed)", m.rejections),
        (
            "keyway_snapshot_update_failures",
            "discovery streams that failed and snapshot updates that could not be applied",
            m.update_failures,
        ),
    )
    for name, doc, count in counters:
        yield CounterMetricFamily(name, doc, value=count)


def registry(
    metrics: RequestMetrics | None,
    state: SnapshotState,
    cooldowns: Cooldowns,
    buffer: UsageBuffer | None,
    clock: Callable[[], float],
) -> CollectorRegistry:
    """A registry of the proxy's metrics (one per proxy, never the process-global one)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(_Collector(metrics, state, cooldowns, buffer, clock))
    return reg
