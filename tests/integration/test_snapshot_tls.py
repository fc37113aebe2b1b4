"""Snapshots carry provider keys: TLS, mutual TLS, and the refusal to serve them in clear."""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from control_plane.cli.main import main as cli_main
from control_plane.server import ControlPlane, InsecureListenError, Settings
from data_plane.runner import InsecureSettingsError, ProxyRunner

from .control_planes import start_control_plane, stop_control_plane
from .proxies import (
    Admin,
    RawDiscovery,
    control_plane_at,
    data_plane_token,
    proxy_running,
    proxy_settings,
    wait_until,
)

# -- certificates, made fresh for every test session ----------------------------------------


@dataclass(frozen=True)
class Pair:
    cert: Path
    key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write(
    directory: Path, stem: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> Pair:
    pair = Pair(directory / f"{stem}.crt", directory / f"{stem}.key")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair


def _ca(directory: Path, stem: str) -> tuple[Pair, x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(f"keyway test {stem}"))
        .issuer_name(_name(f"keyway test {stem}"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _write(directory, stem, cert, key), cert, key


def _leaf(
    directory: Path,
    stem: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    *,
    server: bool,
) -> Pair:
    ca_cert, ca_key = issuer
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(stem))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
    )
    if server:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    return _write(directory, stem, builder.sign(ca_key, hashes.SHA256()), key)


@dataclass(frozen=True)
class Pki:
    ca: Path
    server: Pair
    client: Pair
    rogue_ca: Path
    rogue_client: Pair
    """Signed by a CA the control plane does not trust."""

    def credentials(
        self, client: Pair | None = None, ca: Path | None = None
    ) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=(ca or self.ca).read_bytes(),
            private_key=client.key.read_bytes() if client else None,
            certificate_chain=client.cert.read_bytes() if client else None,
        )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, ca_cert, ca_key = _ca(directory, "ca")
    rogue, rogue_cert, rogue_key = _ca(directory, "rogue-ca")
    return Pki(
        ca=ca.cert,
        server=_leaf(directory, "server", (ca_cert, ca_key), server=True),
        client=_leaf(directory, "proxy", (ca_cert, ca_key), server=False),
        rogue_ca=rogue.cert,
        rogue_client=_leaf(directory, "rogue-proxy", (rogue_cert, rogue_key), server=False),
    )


def _settings(tmp_path: Path, pki: Pki, *, mutual: bool, listen: str = "127.0.0.1:0") -> Settings:
    return Settings(
        listen=listen,
        data_dir=tmp_path / "data",
        tls_cert=pki.server.cert,
        tls_key=pki.server.key,
        tls_client_ca=pki.ca if mutual else None,
    )


# -- TLS -------------------------------------------------------------------------------------


def test_proxy_converges_over_tls(tmp_path: Path, pki: Pki) -> None:
    with control_plane_at(_settings(tmp_path, pki, mutual=False), pki.credentials()) as cp:
        admin = Admin(cp)
        token = data_plane_token(cp.data_dir)
        settings = proxy_settings(
            cp.address.replace("127.0.0.1", "localhost"), token, "proxy-tls", tls_ca=pki.ca
        )
        with proxy_running(settings) as proxy:
            wait_until(lambda: admin.in_sync("proxy-tls"), what="IN_SYNC over TLS")
            admin.provider_key("sk-proj-tls-Ar7Tx1Vb5Nm8Hc2Jf6Gd0Sa4Pe")
            revision = admin.revision()
            wait_until(lambda: proxy.version() == revision, what="a write over TLS")
            assert proxy.get("/readyz").status_code == 200


@pytest.mark.parametrize("how", ["plaintext", "untrusted-server"])
def test_a_client_that_does_not_speak_the_servers_tls_is_refused(
    tmp_path: Path, pki: Pki, how: str
) -> None:
    with control_plane_at(_settings(tmp_path, pki, mutual=False), pki.credentials()) as cp:
        token = data_plane_token(cp.data_dir)
        credentials = None if how == "plaintext" else pki.credentials(ca=pki.rogue_ca)
        with RawDiscovery(cp.address, token, credentials=credentials) as raw:
            raw.hello("raw-tls")
            assert raw.error().code() == grpc.StatusCode.UNAVAILABLE
        assert Admin(cp).node("raw-tls") is None


# -- mutual TLS ------------------------------------------------------------------------------


@pytest.fixture
def mtls_control_plane(tmp_path: Path, pki: Pki) -> Iterator[Admin]:
    settings = _settings(tmp_path, pki, mutual=True)
    with control_plane_at(settings, pki.credentials(pki.client)) as cp:
        yield Admin(cp)


def test_proxy_with_a_client_certificate_converges_under_mtls(
    mtls_control_plane: Admin, pki: Pki
) -> None:
    admin = mtls_control_plane
    settings = proxy_settings(
        admin.cp.address,
        data_plane_token(admin.cp.data_dir),
        "proxy-mtls",
        tls_ca=pki.ca,
        tls_client_cert=pki.client.cert,
        tls_client_key=pki.client.key,
    )
    with proxy_running(settings) as proxy:
        wait_until(lambda: admin.in_sync("proxy-mtls"), what="IN_SYNC over mTLS")
        assert proxy.get("/readyz").status_code == 200


def test_proxy_without_a_client_certificate_is_refused_under_mtls(
    mtls_control_plane: Admin, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="keyway.data_plane.snapshots")
    admin = mtls_control_plane
    settings = proxy_settings(
        admin.cp.address, data_plane_token(admin.cp.data_dir), "proxy-no-cert", tls_ca=pki.ca
    )
    with proxy_running(settings) as proxy:
        wait_until(
            lambda: "discovery stream ended: UNAVAILABLE" in caplog.text,
            what="a refused connection attempt",
        )
        assert not proxy.state.ready
        assert proxy.get("/readyz").status_code == 503
    assert admin.node("proxy-no-cert") is None


@pytest.mark.parametrize("client", ["none", "rogue"])
def test_raw_client_without_a_trusted_certificate_is_refused_under_mtls(
    mtls_control_plane: Admin, pki: Pki, client: str
) -> None:
    admin = mtls_control_plane
    pair = pki.rogue_client if client == "rogue" else None
    with RawDiscovery(
        admin.cp.address, data_plane_token(admin.cp.data_dir), credentials=pki.credentials(pair)
    ) as raw:
        raw.hello("raw-mtls")
        assert raw.error().code() == grpc.StatusCode.UNAVAILABLE
    # The same stream with the trusted certificate works: the refusal was the certificate.
    with RawDiscovery(
        admin.cp.address,
        data_plane_token(admin.cp.data_dir),
        credentials=pki.credentials(pki.client),
    ) as raw:
        raw.hello("raw-mtls")
        raw.update_to(admin.revision())


# -- never in clear off this host ------------------------------------------------------------


@pytest.mark.parametrize("listen", ["0.0.0.0:50051", "[::]:50051", ":50051", "10.1.2.3:50051"])
def test_non_loopback_listen_without_tls_is_refused(tmp_path: Path, listen: str) -> None:
    data_dir = tmp_path / "data"
    with pytest.raises(InsecureListenError, match="without TLS"):
        ControlPlane(Settings(listen=listen, data_dir=data_dir))
    assert not data_dir.exists(), "refused only after touching the data directory"


def test_non_loopback_listen_is_allowed_when_told_or_with_tls(tmp_path: Path, pki: Pki) -> None:
    allowed = Settings(
        listen="0.0.0.0:0", data_dir=tmp_path / "insecure", allow_insecure_remote=True
    )
    server, background = start_control_plane(allowed)
    try:
        assert server.port > 0
    finally:
        stop_control_plane(server, background)
    tls = _settings(tmp_path, pki, mutual=False, listen="0.0.0.0:0")
    server, background = start_control_plane(tls)
    try:
        assert server.port > 0
    finally:
        stop_control_plane(server, background)


@pytest.mark.parametrize(
    ("cert", "key", "client_ca"),
    [
        (Path("cert.pem"), None, None),
        (None, Path("key.pem"), None),
        (None, None, Path("ca.pem")),
    ],
)
def test_a_half_tls_configuration_is_refused_not_served_in_plaintext(
    tmp_path: Path, cert: Path | None, key: Path | None, client_ca: Path | None
) -> None:
    settings = Settings(
        listen="0.0.0.0:0",
        data_dir=tmp_path / "data",
        tls_cert=cert,
        tls_key=key,
        tls_client_ca=client_ca,
    )
    with pytest.raises(InsecureListenError, match="both --tls-cert and --tls-key"):
        ControlPlane(settings)
    assert not (tmp_path / "data").exists()


# -- the proxy: its own listener over TLS, and never a control plane in clear -----------------


def test_the_proxy_serves_https_with_its_certificate(tmp_path: Path, pki: Pki) -> None:
    settings = proxy_settings(
        "127.0.0.1:1", "dp-token", "proxy-https", tls_cert=pki.server.cert, tls_key=pki.server.key
    )
    with proxy_running(settings) as proxy:
        url = f"https://localhost:{proxy.proxy.port}"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(pki.ca))) as https:
            assert https.get(url + "/healthz").status_code == 200
        # Plain HTTP to the TLS port gets no HTTP answer.
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://127.0.0.1:{proxy.proxy.port}/healthz", timeout=5)


@pytest.mark.parametrize("half", ["cert", "key"])
def test_the_proxy_refuses_half_a_tls_listener(pki: Pki, half: str) -> None:
    pair = {"tls_cert": pki.server.cert} if half == "cert" else {"tls_key": pki.server.key}
    settings = proxy_settings("127.0.0.1:1", "dp-token", "proxy-half", **pair)
    with pytest.raises(InsecureSettingsError, match="both --tls-cert and --tls-key"):
        ProxyRunner(settings)


@pytest.mark.parametrize("target", ["10.1.2.3:50051", "cp.example.com:443", "0.0.0.0:50051"])
def test_the_proxy_refuses_a_remote_control_plane_in_clear(target: str) -> None:
    # The snapshot stream carries provider keys and usage reports carry the token.
    with pytest.raises(InsecureSettingsError, match="--allow-insecure-control-plane"):
        ProxyRunner(proxy_settings(target, "dp-token", "proxy-clear"))


def test_the_proxy_follows_a_remote_control_plane_in_clear_only_when_told(
    pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="keyway.data_plane")
    told = proxy_settings(
        "10.1.2.3:50051", "dp-token", "proxy-told", allow_insecure_control_plane=True
    )
    with proxy_running(told) as proxy:
        assert proxy.get("/healthz").status_code == 200
    assert "WITHOUT TLS" in caplog.text
    with_ca = proxy_settings("10.1.2.3:50051", "dp-token", "proxy-ca", tls_ca=pki.ca)
    with proxy_running(with_ca) as proxy:
        assert proxy.get("/healthz").status_code == 200
    assert "dp-token" not in caplog.text


# -- the admin CLI over TLS --------------------------------------------------------------------


def test_admin_cli_speaks_tls_and_mtls(
    mtls_control_plane: Admin, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    cp = mtls_control_plane.cp
    common = ["admin", "--addr", cp.address, "--token", cp.admin_token, "--json"]
    mutual = [
        "--tls-ca",
        str(pki.ca),
        "--tls-client-cert",
        str(pki.client.cert),
        "--tls-client-key",
        str(pki.client.key),
    ]
    assert cli_main([*common, *mutual, "providers", "list"]) == 0
    assert "openai" in capsys.readouterr().out
    # Without a client certificate, or in plaintext, the server refuses the connection.
    assert cli_main([*common, "--tls-ca", str(pki.ca), "providers", "list"]) == 1
    assert cli_main([*common, "providers", "list"]) == 1
    capsys.readouterr()
    assert cli_main([*common, "--tls-client-cert", str(pki.client.cert), "providers", "list"]) == 2
    assert "go together" in capsys.readouterr().err


# -- the HTTP API follows the same rules ------------------------------------------------------


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_the_http_api_serves_https_with_the_control_planes_certificate(
    tmp_path: Path, pki: Pki, mutual: bool
) -> None:
    settings = dataclasses.replace(
        _settings(tmp_path, pki, mutual=mutual), http_listen="127.0.0.1:0"
    )
    server, background = start_control_plane(settings)
    try:
        assert server.http is not None
        url = f"https://localhost:{server.http.port}/readyz"
        trusted = ssl.create_default_context(cafile=str(pki.ca))
        if mutual:
            with pytest.raises(httpx.HTTPError):  # no client certificate
                httpx.get(url, verify=trusted, timeout=5)
            trusted.load_cert_chain(str(pki.client.cert), str(pki.client.key))
        assert httpx.get(url, verify=trusted, timeout=5).status_code == 200
        # The console's session cookie is Secure under TLS.
        token = (settings.data_dir / "admin.token").read_text().strip()
        signed_in = httpx.post(
            url.replace("/readyz", "/console/session"),
            json={"token": token},
            verify=trusted,
            timeout=5,
        )
        assert signed_in.status_code == 201
        assert "; Secure" in signed_in.headers["set-cookie"]
        with pytest.raises(httpx.HTTPError):  # plaintext to the TLS port gets no answer
            httpx.get(f"http://127.0.0.1:{server.http.port}/readyz", timeout=5)
    finally:
        stop_control_plane(server, background)


@pytest.mark.parametrize("http_listen", ["0.0.0.0:8081", "[::]:0", "10.1.2.3:8081"])
def test_the_http_api_off_loopback_without_tls_is_refused(tmp_path: Path, http_listen: str) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(listen="127.0.0.1:0", data_dir=data_dir, http_listen=http_listen)
    with pytest.raises(InsecureListenError, match=r"HTTP API .* without TLS"):
        ControlPlane(settings)
    assert not data_dir.exists()


def test_the_http_api_off_loopback_is_allowed_when_told(tmp_path: Path) -> None:
    settings = Settings(
        listen="127.0.0.1:0",
        data_dir=tmp_path / "data",
        http_listen="0.0.0.0:0",
        allow_insecure_remote=True,
    )
    server, background = start_control_plane(settings)
    try:
        assert server.http is not None
        assert httpx.get(f"http://127.0.0.1:{server.http.port}/healthz").status_code == 200
    finally:
        stop_control_plane(server, background)
