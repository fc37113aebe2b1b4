"""`keyway`: run the control plane, run everything locally, administer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import uvloop

from control_plane.domain.catalog import BUILT_IN_IDS
from control_plane.domain.quotas import DEFAULT_QUOTAS, QUOTAS, Quotas
from control_plane.domain.upstreams import base_url_problem

from .admin import add_admin_parser

if TYPE_CHECKING:
    from data_plane.http.proxy import ProxyOptions


def _base_url_override(text: str) -> tuple[str, str]:
    provider, sep, url = text.partition("=")
    if not sep or provider not in BUILT_IN_IDS:
        raise argparse.ArgumentTypeError(
            f"expected ID=URL with ID one of {', '.join(sorted(BUILT_IN_IDS))}"
        )
    # The operator may point a built-in at a loopback mock or an egress proxy.
    problem = base_url_problem(url, allow_private=True)
    if problem:
        raise argparse.ArgumentTypeError(f"{provider}: URL {problem}")
    return provider, url


def _add_control_plane_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("KEYWAY_DATA_DIR", ".keyway")),
        help="where the database, master key and tokens live (env KEYWAY_DATA_DIR)",
    )
    parser.add_argument(
        "--provider-base-url",
        type=_base_url_override,
        action="append",
        default=[],
        metavar="ID=URL",
        help="send a built-in provider's traffic elsewhere (repeatable)",
    )
    parser.add_argument(
        "--allow-private-upstreams",
        action="store_true",
        help="let custom providers use loopback/private addresses and plain http",
    )
    parser.add_argument("--tls-cert", type=Path, help="server certificate (PEM)")
    parser.add_argument("--tls-key", type=Path, help="server private key (PEM)")
    parser.add_argument(
        "--tls-client-ca", type=Path, help="require client certificates signed by this CA (mTLS)"
    )
    parser.add_argument(
        "--allow-insecure-remote",
        action="store_true",
        help="serve snapshots without TLS on a non-loopback address",
    )
    parser.add_argument(
        "--no-reflection",
        dest="reflection",
        action="store_false",
        help="do not serve gRPC server reflection at all (by default it needs an admin "
        "or operator token)",
    )
    parser.add_argument(
        "--forget-disconnected-after",
        type=_positive(float),
        default=7 * 24 * 3600.0,
        metavar="SECONDS",
        help="drop a disconnected proxy from `data-planes list` after this long "
        "(default: %(default)s, a week)",
    )
    limits = parser.add_argument_group(
        "per-account quotas and the snapshot budget (RESOURCE_EXHAUSTED beyond them)"
    )
    for name, quota in QUOTAS.items():
        limits.add_argument(
            quota.flag,
            dest=f"quota_{name}",
            type=_positive(int),
            default=getattr(DEFAULT_QUOTAS, name),
            metavar="N",
            help=f"{quota.help} (default: %(default)s)",
        )


def _add_proxy_options(parser: argparse.ArgumentParser, *, standalone: bool) -> None:
    parser.add_argument(
        "--cache-dir", type=Path, help="keep an encrypted last-known-good snapshot here"
    )
    parser.add_argument("--node-id", default="", help="default: HOSTNAME:PORT")
    parser.add_argument("--pool", default="default")
    failover = parser.add_argument_group("failover and limits")
    failover.add_argument("--max-attempts", type=_positive(int), default=10)
    failover.add_argument(
        "--attempt-timeout", type=_positive(float), default=60.0, help="seconds per attempt"
    )
    failover.add_argument(
        "--total-deadline", type=_positive(float), default=120.0, help="seconds per request"
    )
    failover.add_argument(
        "--auth-cooldown", type=_positive(float), default=60.0, help="hold-back after 401/403"
    )
    failover.add_argument(
        "--rate-limit-cooldown",
        type=_positive(float),
        default=10.0,
        help="hold-back after a 429 without Retry-After",
    )
    failover.add_argument(
        "--stream-idle-timeout",
        type=_positive(float),
        default=60.0,
        help="seconds without upstream bytes before a started stream is ended",
    )
    failover.add_argument("--max-body-bytes", type=_positive(int), default=32 * 1024 * 1024)
    failover.add_argument(
        "--max-snapshot-age",
        type=_positive(float),
        default=None,
        metavar="SECONDS",
        help="stop serving (503 snapshot_expired) once the routing snapshot has gone this long "
        "without being confirmed by the control plane (default: serve it however old)",
    )
    failover.add_argument(
        "--forward-openai-organization",
        action="store_true",
        help="pass the client's openai-organization/openai-project headers upstream",
    )
    if not standalone:
        return
    parser.add_argument("--control-plane", default="127.0.0.1:50051", help="host:port")
    parser.add_argument(
        "--data-plane-token-file", type=Path, help="else env KEYWAY_DATA_PLANE_TOKEN"
    )
    parser.add_argument("--tls-ca", type=Path, help="CA that signed the control plane's cert")
    parser.add_argument("--tls-client-cert", type=Path, help="client certificate for mTLS")
    parser.add_argument("--tls-client-key", type=Path, help="client key for mTLS")


def _positive(kind: type[int] | type[float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive: {text!r}")
        return value

    return parse


def _proxy_options(args: argparse.Namespace) -> ProxyOptions:
    # Imported here so `keyway admin` does not load the proxy's HTTP stack.
    from data_plane.http.proxy import ProxyOptions
    from data_plane.routing.policy import FailoverPolicy

    return ProxyOptions(
        policy=FailoverPolicy(
            max_attempts=args.max_attempts,
            attempt_timeout=args.attempt_timeout,
            total_deadline=args.total_deadline,
            auth_cooldown=args.auth_cooldown,
            rate_limit_default=args.rate_limit_cooldown,
        ),
        stream_idle_timeout=args.stream_idle_timeout,
        max_body_bytes=args.max_body_bytes,
        forward_organization=args.forward_openai_organization,
    )


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyway", description=__doc__)
    parser.add_argument("--log-level", default="INFO")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cp = commands.add_parser("control-plane", help="run the gRPC control plane")
    cp.add_argument("--listen", default="127.0.0.1:50051", help="host:port (port 0 picks one)")
    _add_control_plane_options(cp)
    cp.set_defaults(func=_run, proxy=False, control_plane_on=True)

    px = commands.add_parser("proxy", help="run a data-plane proxy")
    px.add_argument("--listen", default="127.0.0.1:8080", help="host:port (port 0 picks one)")
    _add_proxy_options(px, standalone=True)
    px.set_defaults(func=_run, proxy=True, control_plane_on=False)

    up = commands.add_parser("up", help="run a control plane and a proxy locally")
    up.add_argument("--listen", default="127.0.0.1:50051", help="control plane host:port")
    up.add_argument("--proxy-listen", default="127.0.0.1:8080", help="proxy host:port")
    _add_control_plane_options(up)
    _add_proxy_options(up, standalone=False)
    up.set_defaults(func=_run, proxy=True, control_plane_on=True)

    mock = commands.add_parser(
        "mock-upstream",
        help="run a mock OpenAI/Anthropic upstream (behaviour chosen by the provider key)",
    )
    mock.add_argument("--listen", default="127.0.0.1:9000", help="host:port (port 0 picks one)")
    mock.add_argument("--latency-ms", type=float, default=0.0, help="added before every response")
    mock.add_argument("--chunk-delay-ms", type=float, default=1.0, help="between stream events")
    mock.set_defaults(func=_run_mock)

    demo = commands.add_parser("demo", help="the stack against a mock upstream, showing failover")
    demo.add_argument("--listen", default="127.0.0.1:0", help="control plane host:port")
    demo.add_argument("--proxy-listen", default="127.0.0.1:8080", help="proxy host:port")
    demo.set_defaults(func=_run_demo)

    reset = commands.add_parser(
        "reset-operator-token",
        help="revoke every operator token and write a new one to the data directory",
        description="Local recovery when every operator token is lost or in the wrong "
        "hands: revokes all operator credentials and writes the token of a new one to "
        "DATA_DIR/operator.token (0600). Safe while the control plane runs.",
    )
    reset.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("KEYWAY_DATA_DIR", ".keyway")),
        help="the control plane's data directory (env KEYWAY_DATA_DIR)",
    )
    reset.set_defaults(func=_reset_operator_token)

    add_admin_parser(commands)
    return parser


def _reset_operator_token(args: argparse.Namespace) -> int:
    from control_plane.bootstrap import reset_operator_token
    from control_plane.server import StartupError, open_data_dir

    if not (args.data_dir / "keyway.db").exists():
        print(f"keyway: no control plane data in {args.data_dir}", file=sys.stderr)
        return 2
    try:
        with open_data_dir(args.data_dir) as (store, _):
            path = reset_operator_token(store, args.data_dir)
            store.db.close()
    except StartupError as error:
        print(f"keyway: cannot reset: {error}", file=sys.stderr)
        return 2
    print(f"keyway: revoked every operator token; the new one is in {path} (mode 0600)")
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    from data_plane.shared.hardening import disable_core_dumps

    from .demo import run_demo

    disable_core_dumps()
    logging.basicConfig(level=logging.WARNING)
    uvloop.run(run_demo(args.proxy_listen, args.listen))
    return 0


def _run_mock(args: argparse.Namespace) -> int:
    from data_plane.mock_upstream.server import MockServer, main_async

    def ready(server: MockServer) -> None:
        print(f"keyway: mock upstream listening on {server.url}", flush=True)

    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    uvloop.run(main_async(args.listen, args.latency_ms, args.chunk_delay_ms, on_ready=ready))
    return 0


def _quotas(args: argparse.Namespace) -> Quotas:
    try:
        return Quotas(**{name: getattr(args, f"quota_{name}") for name in QUOTAS})
    except ValueError as error:
        raise SystemExit(f"keyway: {error}") from None


def _proxy_token(args: argparse.Namespace) -> str:
    if args.data_plane_token_file is not None:
        return str(args.data_plane_token_file.read_text(encoding="utf-8").strip())
    token = os.environ.get("KEYWAY_DATA_PLANE_TOKEN", "")
    if not token:
        raise SystemExit(
            "keyway proxy: no data-plane token; pass --data-plane-token-file PATH "
            "or set KEYWAY_DATA_PLANE_TOKEN"
        )
    return token


async def _serve(args: argparse.Namespace) -> None:
    from control_plane.server import ControlPlane, Settings
    from data_plane.runner import Proxy, ProxySettings

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    control_plane = None
    if args.control_plane_on:
        settings = Settings(
            listen=args.listen,
            data_dir=args.data_dir,
            provider_base_urls=dict(args.provider_base_url),
            allow_private_upstreams=args.allow_private_upstreams,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            allow_insecure_remote=args.allow_insecure_remote,
            quotas=_quotas(args),
            forget_disconnected_after=args.forget_disconnected_after,
            reflection=args.reflection,
        )
        control_plane = ControlPlane(settings)
        port = await control_plane.start()
        host = settings.listen.rsplit(":", 1)[0]
        print(f"keyway: control plane listening on {host}:{port}", flush=True)

    proxy = None
    if args.proxy:
        if control_plane is not None:
            host = args.listen.rsplit(":", 1)[0]
            proxy_settings = ProxySettings(
                listen=args.proxy_listen,
                control_plane=f"{host}:{control_plane.port}",
                token=control_plane.tokens.data_plane.read_text(encoding="utf-8").strip(),
                cache_dir=args.cache_dir or args.data_dir / "proxy-cache",
                node_id=args.node_id,
                pool=args.pool,
                options=_proxy_options(args),
                max_snapshot_age=args.max_snapshot_age,
            )
        else:
            proxy_settings = ProxySettings(
                listen=args.listen,
                control_plane=args.control_plane,
                token=_proxy_token(args),
                cache_dir=args.cache_dir,
                node_id=args.node_id,
                pool=args.pool,
                tls_ca=args.tls_ca,
                tls_client_cert=args.tls_client_cert,
                tls_client_key=args.tls_client_key,
                options=_proxy_options(args),
                max_snapshot_age=args.max_snapshot_age,
            )
        proxy = Proxy(proxy_settings)
        await proxy.start()
        host = proxy_settings.listen.rpartition(":")[0]
        print(f"keyway: proxy listening on http://{host}:{proxy.port}", flush=True)

    await stopping.wait()
    print("keyway: shutting down", flush=True)
    if proxy is not None:
        await proxy.stop()
    if control_plane is not None:
        await control_plane.stop()


def _run(args: argparse.Namespace) -> int:
    from control_plane.server import StartupError
    from data_plane.shared.hardening import disable_core_dumps
    from data_plane.shared.private_files import UnsafePathError

    # Before any provider key is read: a core dump would write them all to disk.
    disable_core_dumps()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        # uvloop: the proxy's event loop is its hot path.
        uvloop.run(_serve(args))
    except (StartupError, UnsafePathError) as error:
        print(f"keyway: cannot start: {error}", file=sys.stderr, flush=True)
        return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
