"""The proxy's settings from `keyway proxy` and from `keyway up`, built in one place."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from control_plane.cli.main import _proxy_settings, build_parser


@dataclass
class _Token:
    text: str

    def read_text(self, encoding: str) -> str:
        return self.text + "\n"


@dataclass
class _Tokens:
    data_plane: _Token


@dataclass
class _ControlPlane:
    """What `keyway up` hands over of the control plane it started."""

    port: int
    tokens: _Tokens


def test_a_standalone_proxy_follows_the_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYWAY_DATA_PLANE_TOKEN", " kwdp_from_env ")
    args = build_parser().parse_args(
        [
            "proxy",
            "--listen",
            "0.0.0.0:8443",
            "--control-plane",
            "cp.internal:50051",
            "--tls-ca",
            "ca.pem",
            "--tls-client-cert",
            "client.pem",
            "--tls-client-key",
            "client.key",
            "--tls-cert",
            "server.pem",
            "--tls-key",
            "server.key",
            "--cache-dir",
            "/var/cache/keyway",
            "--node-id",
            "edge-1",
            "--max-attempts",
            "3",
            "--max-connections",
            "12",
        ]
    )
    settings = _proxy_settings(args, None)
    assert (settings.listen, settings.control_plane, settings.token) == (
        "0.0.0.0:8443",
        "cp.internal:50051",
        "kwdp_from_env",
    )
    assert (settings.tls_ca, settings.tls_client_cert, settings.tls_client_key) == (
        Path("ca.pem"),
        Path("client.pem"),
        Path("client.key"),
    )
    assert (settings.tls_cert, settings.tls_key) == (Path("server.pem"), Path("server.key"))
    assert settings.cache_dir == Path("/var/cache/keyway")
    assert settings.node_id == "edge-1"
    assert settings.options.policy.max_attempts == 3
    assert settings.limits.max_connections == 12
    assert not settings.allow_insecure_control_plane


def test_up_points_the_proxy_at_the_control_plane_beside_it(tmp_path: Path) -> None:
    args = build_parser().parse_args(
        [
            "up",
            "--listen",
            "0.0.0.0:0",
            "--proxy-listen",
            "127.0.0.1:0",
            "--data-dir",
            str(tmp_path),
            "--allow-insecure-remote",
            "--tls-cert",
            "cp.pem",
            "--tls-key",
            "cp.key",
        ]
    )
    settings = _proxy_settings(args, _ControlPlane(50999, _Tokens(_Token("kwdp_local"))))
    # Listening everywhere includes loopback, which is where the proxy reaches it.
    assert settings.control_plane == "127.0.0.1:50999"
    assert (settings.listen, settings.token) == ("127.0.0.1:0", "kwdp_local")
    assert settings.cache_dir == tmp_path / "proxy-cache"
    assert settings.allow_insecure_control_plane
    # The certificate flags of `up` are the control plane's, not the proxy's.
    assert (settings.tls_cert, settings.tls_key, settings.tls_ca) == (None, None, None)
