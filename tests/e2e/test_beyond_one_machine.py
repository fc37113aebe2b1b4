"""Beyond one machine, with real processes: control-plane replicas on one PostgreSQL,
proxies that fail over between them, the database restarting, and `--workers`.

Every scenario runs SDK clients against the proxies and counts failed requests: there
must be none.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from keyway.v1 import data_planes_pb2 as dp
from keyway.v1 import data_planes_pb2_grpc as dp_grpc
from keyway.v1 import provider_keys_pb2 as pk
from keyway.v1 import provider_keys_pb2_grpc as pk_grpc

from tests.postgres import PostgresServer, fresh_url, own_server

from .stack import HTTP_ANY, Process, Stack, Traffic, wait_until

MASTER_KEYS = "e2e-kek:" + base64.b64encode(bytes(range(7, 39))).decode()
"""The deployment's keyring, the same for every replica (never a real one)."""


@dataclass
class Replicated:
    stack: Stack
    """Admin calls go to `replicas[0]` until a test points `stack.channel` elsewhere."""
    replicas: list[Process]
    proxies: list[Process]
    data_dir: Path

    def data_planes(self) -> list[dp.DataPlane]:
        """As the operator: node ids and replicas are not in an account admin's view."""
        token = (self.data_dir / "operator.token").read_text().strip()
        stub = dp_grpc.DataPlaneServiceStub(self.stack.channel)
        request = dp.ListDataPlanesRequest()
        return list(
            stub.ListDataPlanes(
                request, metadata=(("authorization", f"Bearer {token}"),)
            ).data_planes
        )

    def replica_on(self, node_id: str) -> Process:
        """The replica whose stream the proxy `node_id` holds."""
        node = next(n for n in self.data_planes() if n.node_id == node_id)
        port = node.control_plane.rpartition(":")[2]
        return next(r for r in self.replicas if r.address.endswith(f":{port}"))

    def use(self, replica: Process) -> None:
        self.stack.channel.close()
        self.stack.channel = grpc.insecure_channel(replica.address)

    def node(self, node_id: str) -> dp.DataPlane | None:
        return next((n for n in self.data_planes() if n.node_id == node_id), None)


def _replica(name: str, url: str, data_dir: Path, mock: str) -> Process:
    process = Process(
        name,
        [
            "control-plane",
            *("--listen", "127.0.0.1:0", "--data-dir", str(data_dir), *HTTP_ANY),
            *("--database-url", url),
            *("--provider-base-url", f"openai=http://{mock}/v1"),
        ],
        env={"KEYWAY_MASTER_KEYS": MASTER_KEYS},
    )
    process.wait_listening()
    return process


def _proxy(name: str, targets: str, token_file: Path, *more: str) -> Process:
    process = Process(
        name,
        [
            "proxy",
            *("--listen", "127.0.0.1:0", "--control-plane", targets),
            *("--data-plane-token-file", str(token_file), "--node-id", name),
            *more,
        ],
    )
    process.wait_listening()
    return process


@contextmanager
def replicated(
    tmp_path: Path,
    url: str,
    *,
    proxies: int = 1,
    proxy_flags: tuple[str, ...] = (),
    spread: bool = False,
) -> Iterator[Replicated]:
    """`spread`: proxy i follows replica i % 2 alone (each proxy otherwise starts at a random
    place in the list of both, so all of them may land on one)."""
    processes: list[Process] = []
    stack: Stack | None = None
    try:
        mock = Process("mock upstream", ["mock-upstream", "--listen", "127.0.0.1:0"])
        processes.append(mock)
        mock_address = mock.wait_listening()
        first = _replica("replica 1", url, tmp_path / "r1", mock_address)
        processes.append(first)
        second = _replica("replica 2", url, tmp_path / "r2", mock_address)
        processes.append(second)
        targets = f"{first.address},{second.address}"
        token_file = tmp_path / "r1" / "data-plane.token"
        started = []
        for i in range(proxies):
            mine = (first, second)[i % 2].address if spread else targets
            started.append(_proxy(f"proxy-{i + 1}", mine, token_file, *proxy_flags))
            processes.append(started[-1])
        stack = Stack(
            data_dir=tmp_path / "r1",
            mock=mock,
            control_plane=first,
            proxy=started[0],
            channel=grpc.insecure_channel(first.address),
            admin_token=(tmp_path / "r1" / "admin.token").read_text().strip(),
            processes=processes,
        )
        yield Replicated(stack, [first, second], started, tmp_path / "r1")
    finally:
        if stack is not None:
            for client in stack.clients:
                client.close()
            stack.channel.close()
        for process in reversed(processes):
            process.stop()


def test_killing_the_replica_a_proxy_uses_under_load_fails_no_request(tmp_path: Path) -> None:
    with replicated(tmp_path, fresh_url()) as world:
        stack = world.stack
        key_id = stack.add_provider_key("openai", "sk-mock-ok-before-kill")
        _, token = stack.add_access_key()
        stack.wait_synced(timeout=20)
        with Traffic(stack, token) as traffic:
            wait_until(lambda: traffic.served > 20, what="traffic to flow")
            victim = world.replica_on("proxy-1")
            survivor = next(r for r in world.replicas if r is not victim)
            victim.kill()
            world.use(survivor)

            def moved() -> bool:
                node = world.node("proxy-1")
                return (
                    node is not None
                    and node.state == dp.DATA_PLANE_STATE_IN_SYNC
                    and node.control_plane.endswith(survivor.address.rpartition(":")[2])
                )

            wait_until(moved, timeout=30, what="the proxy IN_SYNC on the surviving replica")
            stack.rotate_provider_key(key_id, "sk-mock-ok-rotated-on-survivor")
            stack.wait_synced(timeout=20)
            stack.reset_upstream()
            served = traffic.served
            wait_until(lambda: traffic.served > served + 20, what="traffic after the rotation")
            labels = {r["label"] for r in stack.upstream_requests()}
            assert labels == {"ok-rotated-on-survivor"}
        assert traffic.failures == []


def test_a_write_through_one_replica_reaches_proxies_on_the_other(tmp_path: Path) -> None:
    with replicated(tmp_path, fresh_url(), proxies=4, spread=True) as world:
        stack = world.stack
        _, token = stack.add_access_key()
        stack.wait_synced(timeout=20)
        # Each replica writes the status rows of its own proxies: wait until all are seen.
        names = {p.name for p in world.proxies}
        wait_until(
            lambda: names <= {n.node_id for n in world.data_planes() if n.control_plane},
            timeout=20,
            what="every proxy's status row",
        )
        on = {p.name: world.replica_on(p.name) for p in world.proxies}
        assert set(on.values()) == set(world.replicas), "proxies spread over both replicas"
        stack.add_provider_key("openai", "sk-mock-ok-everywhere")
        stack.wait_synced(timeout=10)
        for proxy in world.proxies:
            stack.proxy = proxy
            with Traffic(stack, token, clients=1) as traffic:
                wait_until(lambda: traffic.served > 3, what=f"{proxy.name} serving")
            assert traffic.failures == []


@pytest.fixture
def own_database() -> Iterator[PostgresServer]:
    with own_server() as server:
        yield server


def test_restarting_postgresql_under_load_fails_no_request(
    tmp_path: Path, own_database: PostgresServer
) -> None:
    with replicated(tmp_path, own_database.fresh_database()) as world:
        stack = world.stack
        stack.add_provider_key("openai", "sk-mock-ok-steady")
        _, token = stack.add_access_key()
        stack.wait_synced(timeout=20)
        stub = pk_grpc.ProviderKeyServiceStub(stack.channel)
        with Traffic(stack, token) as traffic:
            wait_until(lambda: traffic.served > 20, what="traffic to flow")
            own_database.stop()
            refused = None
            try:
                stack.add_provider_key("openai", "sk-mock-ok-while-down")
            except grpc.RpcError as error:
                refused = error
            assert refused is not None
            assert refused.code() == grpc.StatusCode.UNAVAILABLE
            assert "database is unavailable" in (refused.details() or "")
            served = traffic.served
            wait_until(lambda: traffic.served > served + 30, what="serving with the database down")
            own_database.start()

            def written() -> bool:
                try:
                    stack.add_provider_key("openai", "sk-mock-ok-after", name="after")
                except grpc.RpcError as error:
                    if error.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    return False
                return True

            wait_until(written, timeout=30, what="a write once PostgreSQL is back")
            stack.wait_synced(timeout=20)
            names = {
                k.name
                for k in stub.ListProviderKeys(
                    pk.ListProviderKeysRequest(), metadata=stack.auth
                ).provider_keys
            }
            assert "after" in names
            assert "sk-mock-ok-while-down"[-12:] not in names
        assert traffic.failures == []
        # Both replicas stayed up through it.
        assert all(r.proc.poll() is None for r in world.replicas)


def test_concurrent_writers_through_both_replicas_never_lose_an_update(tmp_path: Path) -> None:
    with replicated(tmp_path, fresh_url(), proxies=1) as world:
        stack = world.stack
        key_id = stack.add_provider_key("openai", "sk-mock-ok-counter", name="0")
        stubs = [
            pk_grpc.ProviderKeyServiceStub(grpc.insecure_channel(r.address)) for r in world.replicas
        ]
        applied: list[int] = []
        failures: list[BaseException] = []

        def writer(stub: pk_grpc.ProviderKeyServiceStub) -> None:
            try:
                for _ in range(10):
                    while True:
                        got = stub.GetProviderKey(
                            pk.GetProviderKeyRequest(id=key_id), metadata=stack.auth
                        ).provider_key
                        change = pk.ProviderKey(
                            id=key_id, name=str(int(got.name) + 1), etag=got.etag
                        )
                        request = pk.UpdateProviderKeyRequest(provider_key=change)
                        request.update_mask.paths.append("name")
                        try:
                            stub.UpdateProviderKey(request, metadata=stack.auth)
                        except grpc.RpcError as error:
                            if error.code() != grpc.StatusCode.ABORTED:
                                raise
                            continue
                        applied.append(1)
                        break
            except BaseException as error:
                failures.append(error)

        threads = [threading.Thread(target=writer, args=(s,)) for s in stubs * 2]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert failures == []
        assert int(stack.provider_key(key_id).name) == len(applied) == 40


def test_a_proxy_with_two_workers_serves_one_port_as_two_nodes(tmp_path: Path) -> None:
    with replicated(tmp_path, fresh_url(), proxy_flags=("--workers", "2")) as world:
        stack = world.stack
        stack.add_provider_key("openai", "sk-mock-ok-workers")
        _, token = stack.add_access_key()

        def both_in_sync() -> bool:
            states = {
                n.node_id: n.state for n in world.data_planes() if n.node_id.startswith("proxy-1/")
            }
            return states == {
                "proxy-1/w1": dp.DATA_PLANE_STATE_IN_SYNC,
                "proxy-1/w2": dp.DATA_PLANE_STATE_IN_SYNC,
            }

        wait_until(both_in_sync, timeout=30, what="both workers IN_SYNC")
        with Traffic(stack, token, clients=4) as traffic:
            wait_until(lambda: traffic.served > 40, what="traffic through the workers")
        assert traffic.failures == []
        assert "(2 workers)" in world.proxies[0].output()
