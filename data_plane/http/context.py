"""What every request shares within one proxy process, and the options that shape it.

Built once by the runner (or by a test, with a fake transport); each request's stages
read from it and never replace its parts.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from data_plane.routing.admission import Admission, AdmissionLimits
from data_plane.routing.cooldowns import Cooldowns
from data_plane.routing.policy import FailoverPolicy
from data_plane.snapshot.state import SnapshotState
from data_plane.upstream.transport import Transport
from data_plane.usage import Observer

T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024 * 1024
"""Room for OpenAI's largest vision request (50 MB of images, base64-encoded) and
Anthropic's 32 MB request limit."""


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    policy: FailoverPolicy = field(default_factory=FailoverPolicy)
    stream_idle_timeout: float = 60.0
    """Seconds without a byte from upstream before a started stream is ended."""
    max_body_bytes: int = MAX_BODY_BYTES
    forward_organization: bool = False
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)
    max_stream_duration: float = 1800.0
    """Seconds a response may take to relay, once started (a stream trickling a byte a
    minute would otherwise hold its connections for ever)."""

    def __post_init__(self) -> None:
        for name in ("stream_idle_timeout", "max_stream_duration"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")
        if self.max_body_bytes < 1:
            raise ValueError("max_body_bytes must be at least 1")


def loop_clock() -> float:
    """The event loop's clock: the one its timers, and so upstream timeouts, run on."""
    return asyncio.get_running_loop().time()


def _body_worker() -> Executor:
    # One thread: a large body is scanned off the event loop, but scans hold the GIL in
    # short slices, so a second one in parallel would only slow the loop down further.
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyway-body")


@dataclass(slots=True)
class ProxyContext:
    """What every request shares within one proxy process."""

    state: SnapshotState
    upstream: Transport
    observer: Observer = field(default_factory=Observer)
    """Where each finished request goes: records, metrics, the request log."""
    options: ProxyOptions = field(default_factory=ProxyOptions)
    cooldowns: Cooldowns = field(default_factory=Cooldowns)
    clock: Callable[[], float] = loop_clock
    """Monotonic seconds for deadlines and cooldowns (the loop's, like the timers)."""
    wall: Callable[[], float] = time.time
    """Wall-clock seconds, for usage times and dates in provider headers."""
    timer: Callable[[], float] = time.perf_counter
    """Seconds for request records and metrics: the loop's clock ticks in whole
    milliseconds under uvloop, too coarse for what the proxy adds."""
    body_worker: Executor = field(default_factory=_body_worker)
    """Where bodies too large to scan on the event loop are read and rewritten."""
    admission: Admission = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(self.options.admission)
        # Rotating a key's value makes it a new credential: see Cooldowns.release_rotated.
        self.state.listeners.append(self.cooldowns.release_rotated)

    async def off_loop(self, body: bytes, work: Callable[..., T], *args: Any) -> T:
        """`work(body, *args)` on the body worker (for bodies that `needs_worker`)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.body_worker, work, body, *args)
