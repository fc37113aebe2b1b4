"""`keyway`: run the control plane, run everything locally, administer."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from control_plane.domain.catalog import BUILT_IN_IDS
from control_plane.domain.upstreams import base_url_problem

from .admin import add_admin_parser


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
    parser.add_argument("--log-level", default="INFO")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keyway", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    cp = commands.add_parser("control-plane", help="run the gRPC control plane")
    cp.add_argument("--listen", default="127.0.0.1:50051", help="host:port (port 0 picks one)")
    _add_control_plane_options(cp)
    cp.set_defaults(func=_run_control_plane)

    up = commands.add_parser("up", help="run Keyway locally on the embedded SQLite default")
    up.add_argument("--listen", default="127.0.0.1:50051", help="control plane host:port")
    _add_control_plane_options(up)
    up.set_defaults(func=_run_control_plane)

    add_admin_parser(commands)
    return parser


def _run_control_plane(args: argparse.Namespace) -> int:
    from control_plane.server import ControlPlane, Settings

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = Settings(
        listen=args.listen,
        data_dir=args.data_dir,
        provider_base_urls=dict(args.provider_base_url),
        allow_private_upstreams=args.allow_private_upstreams,
    )

    async def serve() -> None:
        control_plane = ControlPlane(settings)
        port = await control_plane.start()
        host = settings.listen.rsplit(":", 1)[0]
        print(f"keyway: control plane listening on {host}:{port}", flush=True)
        print(
            f"keyway: try `KEYWAY_ADDR={host}:{port} keyway admin providers list` "
            f"(the admin token is read from {settings.data_dir / 'admin.token'})",
            flush=True,
        )
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        await stopping.wait()
        print("keyway: shutting down", flush=True)
        await control_plane.stop()

    asyncio.run(serve())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
