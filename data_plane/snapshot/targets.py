"""The control planes a proxy follows: `--control-plane a:50051,b:50051`.

Any replica of a shared database serves the same snapshots (same version, same hash), so
a proxy follows one at a time and, when its stream breaks, reconnects to the next in the
list, with jittered backoff (`client.Backoff`). Each proxy starts at a random place in
the list, so a fleet spreads over the replicas. A DNS name with several addresses is one
entry: gRPC resolves it again for each new stream and tries its addresses in a shuffled
order (`pick_first` with `shuffleAddressList`), moving past one that does not answer.
Usage reports go to whichever control plane the stream is on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import grpc

from data_plane.shared.limits import SNAPSHOT_RECEIVE_LIMIT

CHANNEL_OPTIONS: tuple[tuple[str, int | str], ...] = (
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", SNAPSHOT_RECEIVE_LIMIT),
    (
        "grpc.service_config",
        json.dumps({"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": True}}]}),
    ),
)


def parse_targets(text: str) -> tuple[str, ...]:
    """`a:50051,b:50051` -> ("a:50051", "b:50051"); ValueError names what is wrong."""
    targets = tuple(part.strip() for part in text.split(","))
    if not text.strip() or any(not t for t in targets):
        raise ValueError("--control-plane: expected HOST:PORT[,HOST:PORT…] with no empty entry")
    for target in targets:
        host, sep, port = target.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"--control-plane: '{target[:100]}' is not HOST:PORT")
    if len(set(targets)) != len(targets):
        raise ValueError("--control-plane: an address is listed twice")
    return targets


class ControlPlanes:
    """Which control plane the proxy is on, and channels to each (for usage reports)."""

    def __init__(
        self,
        targets: Sequence[str],
        credentials: grpc.ChannelCredentials | None,
        rand: Callable[[], float],
    ) -> None:
        self.targets = tuple(targets)
        self._credentials = credentials
        self._index = min(len(self.targets) - 1, int(rand() * len(self.targets)))
        self._channels: dict[str, grpc.aio.Channel] = {}

    @property
    def current(self) -> str:
        return self.targets[self._index]

    def advance(self) -> str:
        """Moves to the next control plane in the list (the same one if it is alone)."""
        self._index = (self._index + 1) % len(self.targets)
        return self.current

    def new_channel(self, target: str) -> grpc.aio.Channel:
        if self._credentials is None:
            return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
        return grpc.aio.secure_channel(target, self._credentials, options=CHANNEL_OPTIONS)

    def channel(self) -> grpc.aio.Channel:
        """A lasting channel to the current control plane."""
        target = self.current
        if target not in self._channels:
            self._channels[target] = self.new_channel(target)
        return self._channels[target]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
