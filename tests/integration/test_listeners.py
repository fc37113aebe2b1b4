"""No listener shares its port: a second one on a port in use fails at once, saying why.

The holder sets SO_REUSEPORT, as gRPC does by default: were a Keyway listener to set it
too, the kernel would let both share the port and these tests would fail.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.server import ControlPlane, Settings
from data_plane.mock_upstream.server import MockServer
from data_plane.runner import ProxyRunner, ProxySettings
from data_plane.shared.startup import ListenError, StartupError, bind, check_free
from tests.sockets import shareable_port

from .control_planes import start_control_plane, stop_control_plane

IN_USE = "address already in use"


@pytest.fixture
def held() -> Iterator[str]:
    """A port another process could share, were we to allow it."""
    with shareable_port() as address:
        yield address


def test_bind_and_check_refuse_a_port_in_use(held: str) -> None:
    for attempt in (lambda: bind(held, "proxy"), lambda: check_free(held, "proxy")):
        with pytest.raises(ListenError) as refused:
            attempt()
        assert str(refused.value) == (
            f"cannot listen on {held} for the proxy: {IN_USE}; another process (another "
            "keyway?) listens there: stop it, or choose another port (port 0 picks a free one)"
        )


def test_bind_takes_ipv6_in_brackets_and_port_zero() -> None:
    with bind("127.0.0.1:0", "proxy") as first:
        port = first.getsockname()[1]
        assert port != 0
        with pytest.raises(ListenError, match=IN_USE):
            bind(f"127.0.0.1:{port}", "proxy")
    if socket.has_ipv6:
        try:
            listener = bind("[::1]:0", "proxy")
        except ListenError:
            pytest.skip("no IPv6 loopback on this machine")
        with listener:
            assert listener.family == socket.AF_INET6


def test_an_unknown_host_is_named() -> None:
    with pytest.raises(ListenError, match=r"unknown host 'no-such-host\.invalid'"):
        bind("no-such-host.invalid:8080", "proxy")


def test_a_second_control_plane_on_the_port_fails_before_touching_its_data_dir(
    tmp_path: Path,
) -> None:
    first, loop = start_control_plane(Settings(listen="127.0.0.1:0", data_dir=tmp_path / "a"))
    try:
        listen = f"127.0.0.1:{first.port}"
        with pytest.raises(ListenError, match=f"{listen} for the control plane: {IN_USE}"):
            ControlPlane(Settings(listen=listen, data_dir=tmp_path / "b"))
        assert not (tmp_path / "b").exists()
    finally:
        stop_control_plane(first, loop)


def test_the_control_plane_does_not_share_with_a_reusing_holder(held: str, tmp_path: Path) -> None:
    with pytest.raises(ListenError, match=IN_USE):
        ControlPlane(Settings(listen=held, data_dir=tmp_path / "data"))


def test_proxy_and_mock_refuse_a_port_in_use(held: str) -> None:
    with pytest.raises(ListenError, match=f"for the proxy: {IN_USE}"):
        ProxyRunner(ProxySettings(listen=held, token="unused"))
    with pytest.raises(ListenError, match=f"for the mock upstream: {IN_USE}"):
        MockServer(held)


def test_missing_tls_files_name_their_flag(tmp_path: Path) -> None:
    missing = tmp_path / "cert.pem"
    settings = Settings(
        listen="127.0.0.1:0", data_dir=tmp_path / "data", tls_cert=missing, tls_key=missing
    )
    with pytest.raises(StartupError, match=f"cannot read --tls-cert {missing}: no such file"):
        ControlPlane(settings)
    assert not (tmp_path / "data").exists()
    with pytest.raises(StartupError, match=f"cannot read --tls-ca {missing}: no such file"):
        ProxyRunner(ProxySettings(listen="127.0.0.1:0", token="unused", tls_ca=missing))


def test_an_address_of_another_machine_says_what_to_use_instead() -> None:
    # 192.0.2.1 is TEST-NET-1: documentation only, never configured on a real interface.
    with socket.socket() as probe:
        try:
            probe.bind(("192.0.2.1", 0))
        except OSError:
            pass
        else:
            pytest.skip("this machine binds non-local addresses (net.ipv4.ip_nonlocal_bind)")
    with pytest.raises(ListenError) as refused:
        check_free("192.0.2.1:5000", "control plane")
    assert "cannot assign requested address; no network interface" in str(refused.value)
    assert "use 127.0.0.1, 0.0.0.0" in str(refused.value)
