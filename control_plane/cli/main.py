"""`keyway`: run the control plane, a proxy, both, the mock upstream or the demo; administer.

Every mistake in how a command is started ends the same way: one line `keyway: error: …`
saying what to change, and a non-zero exit (2 for a command line argparse refuses, 1 for a
process that cannot start as configured), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import uvloop

from control_plane.domain import catalog, pricing
from control_plane.domain.catalog import BUILT_IN_IDS
from control_plane.domain.errors import InvalidArgument
from control_plane.domain.pricing import Price
from control_plane.domain.quotas import DEFAULT_QUOTAS, QUOTAS, Quotas
from control_plane.domain.upstreams import base_url_problem
from control_plane.http.listener import WHAT as HTTP_WHAT
from data_plane.shared.private_files import UnsafePathError
from data_plane.shared.startup import ListenError, StartupError, check_free, parse_address

from .admin import add_admin_parser
from .parsing import Parser

if TYPE_CHECKING:
    from control_plane.server import Storage
    from data_plane.runner import ConnectionLimits, ObserveSettings, ProxyOptions, ProxySettings

T = TypeVar("T")

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _listen_address(text: str) -> str:
    try:
        parse_address(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _http_listen(text: str) -> str | None:
    return None if text == "off" else _listen_address(text)


def _model_prices(text: str) -> dict[str, Price]:
    """A `--model-prices` file, read and checked now: errors name the file and entry."""
    try:
        doc = json.loads(Path(text).read_text(encoding="utf-8"))
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot read {text}: {error.strerror}") from None
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text} is not JSON: {error}") from None
    try:
        return pricing.parse(doc)
    except InvalidArgument as error:
        problems = "; ".join(f"{v.field}: {v.description}" for v in error.violations)
        raise argparse.ArgumentTypeError(f"{text}: {problems}") from None


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


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def _add_listen(parser: argparse.ArgumentParser, flag: str, default: str, what: str) -> None:
    parser.add_argument(
        flag,
        type=_listen_address,
        default=default,
        metavar="HOST:PORT",
        help=f"where the {what} listens (port 0 picks a free one)",
    )


def _add_database_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB (default: "
        "$KEYWAY_DATABASE_URL, else SQLite in the data dir); replicas share a PostgreSQL one",
    )
    parser.add_argument(
        "--master-key-file",
        type=Path,
        metavar="PATH",
        help="the master keyring file (default: $KEYWAY_MASTER_KEY_FILE, else "
        "DATA_DIR/master.keys); KEYWAY_MASTER_KEYS, when set, wins. Every replica of a "
        "shared database must use the same keys",
    )


def _add_control_plane_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--http-listen",
        type=_http_listen,
        default="127.0.0.1:8081",
        metavar="HOST:PORT|off",
        help="where the HTTP listener (admin REST API, /openapi.json, /healthz, /readyz) "
        "listens; off: none (default: %(default)s)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where the database, master key and tokens live "
        "(default: $KEYWAY_DATA_DIR, else .keyway)",
    )
    _add_database_options(parser)
    parser.add_argument(
        "--replica-id",
        default="",
        metavar="NAME",
        help="how `data-planes list` names this control plane (default: HOST:PORT)",
    )
    parser.add_argument(
        "--provider-base-url",
        type=_base_url_override,
        action="append",
        default=[],
        metavar="ID=URL",
        help="send a built-in provider's traffic elsewhere, e.g. an egress proxy (repeatable)",
    )
    parser.add_argument(
        "--allow-private-upstreams",
        action="store_true",
        help="let custom providers use loopback/private addresses and plain http",
    )
    parser.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="server certificate (gRPC and HTTP API)"
    )
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    parser.add_argument(
        "--tls-client-ca",
        type=Path,
        metavar="PEM",
        help="require client certificates signed by this CA (mTLS)",
    )
    parser.add_argument(
        "--allow-insecure-remote",
        action="store_true",
        help="serve snapshots and the HTTP API without TLS on a non-loopback address",
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
        default=7 * 24 * 3600,
        metavar="SECONDS",
        help="drop a disconnected proxy from `data-planes list` after this long "
        "(default: %(default)s, a week)",
    )
    usage = parser.add_argument_group("usage and observability")
    usage.add_argument(
        "--model-prices",
        type=_model_prices,
        metavar="FILE",
        help='JSON {"provider/model": {"input": USD, "output": USD, "cached_input": USD}} per '
        "million tokens, over the built-in list prices (a model without a price has no cost)",
    )
    usage.add_argument(
        "--usage-retention-days",
        type=_positive(float),
        default=30,
        metavar="DAYS",
        help="keep every attempt record (`admin requests get`) this long",
    )
    usage.add_argument(
        "--usage-rollup-retention-days",
        type=_positive(float),
        default=400,
        metavar="DAYS",
        help="keep hourly usage totals (`admin usage`) this long",
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


def _storage(args: argparse.Namespace) -> Storage:
    """The data dir, database and key file: flags first, then the environment."""
    from control_plane.server import Storage

    url: str | None = args.database_url
    key_file: Path | None = args.master_key_file
    env_key_file = os.environ.get("KEYWAY_MASTER_KEY_FILE", "")
    return Storage(
        _data_dir(args),
        url if url is not None else os.environ.get("KEYWAY_DATABASE_URL", ""),
        key_file or (Path(env_key_file) if env_key_file else None),
    )


def _quotas(args: argparse.Namespace) -> Quotas:
    try:
        return Quotas(**{name: getattr(args, f"quota_{name}") for name in QUOTAS})
    except ValueError as error:
        raise StartupError(str(error)) from None


# (flag, number type, default, metavar, help) of the proxy's failover bounds and limits.
_FAILOVER_FLAGS: tuple[tuple[str, type[int] | type[float], float, str, str], ...] = (
    ("--max-attempts", int, 10, "N", "attempts per request"),
    ("--attempt-timeout", float, 60.0, "SECONDS", "per upstream attempt"),
    ("--total-deadline", float, 120.0, "SECONDS", "per request, all attempts included"),
    ("--auth-cooldown", float, 60.0, "SECONDS", "hold-back of a key after 401/403"),
    (
        "--rate-limit-cooldown",
        float,
        10.0,
        "SECONDS",
        "hold-back of a key after a 429 that says no reset time",
    ),
    (
        "--stream-idle-timeout",
        float,
        60.0,
        "SECONDS",
        "without upstream bytes before a started stream is ended",
    ),
    (
        "--max-body-bytes",
        int,
        64 * 1024 * 1024,
        "BYTES",
        "largest request body accepted (64 MiB: base64 vision payloads)",
    ),
)

# The same for the limits on clients and tenants; each proxy process counts on its own.
_LIMIT_FLAGS: tuple[tuple[str, type[int] | type[float], float, str, str], ...] = (
    ("--max-connections", int, 4096, "N", "concurrent client connections"),
    ("--max-header-bytes", int, 32 * 1024, "BYTES", "request line and headers; over: 431"),
    ("--header-read-timeout", float, 10.0, "SECONDS", "to receive a request's headers"),
    ("--body-read-timeout", float, 60.0, "SECONDS", "to receive a body once its headers are in"),
    ("--keepalive-timeout", float, 5.0, "SECONDS", "an idle connection is kept between requests"),
    ("--write-timeout", float, 60.0, "SECONDS", "a client may leave the response unread"),
    (
        "--max-concurrency-per-access-key",
        int,
        256,
        "N",
        "requests in flight per access key; over: 429 concurrency_limit",
    ),
    (
        "--max-concurrency-per-account",
        int,
        1024,
        "N",
        "requests in flight per account, all its access keys together",
    ),
    ("--max-stream-duration", float, 1800.0, "SECONDS", "to relay one response once started"),
)


def _add_proxy_options(parser: argparse.ArgumentParser, *, standalone: bool) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="keep an encrypted last-known-good snapshot here"
        + ("" if standalone else " (default: DATA_DIR/proxy-cache)"),
    )
    parser.add_argument(
        "--node-id", default="", metavar="ID", help="name in `data-planes list` (HOSTNAME:PORT)"
    )
    parser.add_argument("--pool", default="default", metavar="NAME", help="pool of proxies")
    failover = parser.add_argument_group("failover and limits")
    for flag, kind, default, metavar, text in _FAILOVER_FLAGS:
        failover.add_argument(
            flag, type=_positive(kind), default=default, metavar=metavar, help=text
        )
    failover.add_argument(
        "--min-attempt-time",
        type=_non_negative,
        default=0.25,
        metavar="SECONDS",
        help="no attempt starts with less of the total deadline left",
    )
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
    limits = parser.add_argument_group(
        "connection limits and fairness (each proxy process counts on its own)"
    )
    for flag, kind, default, metavar, text in _LIMIT_FLAGS:
        limits.add_argument(flag, type=_positive(kind), default=default, metavar=metavar, help=text)
    observe = parser.add_argument_group("usage and observability")
    observe.add_argument(
        "--usage-records",
        choices=("on", "off"),
        default="on",
        help="keep a record of every upstream attempt and ship it to the control plane "
        "(usage, `admin requests get`, last used / last error of keys)",
    )
    observe.add_argument(
        "--usage-buffer",
        type=_positive(int),
        default=100_000,
        metavar="RECORDS",
        help="records kept while the control plane is away; then the oldest are dropped",
    )
    observe.add_argument(
        "--metrics", choices=("on", "off"), default="on", help="request metrics on /metrics"
    )
    observe.add_argument(
        "--metrics-key-labels",
        action="store_true",
        help="label request and attempt metrics with access key and provider key ids "
        "(one series per key: mind the cardinality)",
    )
    observe.add_argument(
        "--otlp-endpoint",
        default="",
        metavar="URL",
        help="send OpenTelemetry spans per request and attempt to this OTLP/HTTP collector, "
        "e.g. http://127.0.0.1:4318/v1/traces (needs: pip install 'keyway[tracing]')",
    )
    observe.add_argument(
        "--request-log",
        choices=("json", "text", "off"),
        default="off",
        help="one line per model call on stdout (ids, statuses, timings, tokens; never a "
        "secret or content)",
    )
    if not standalone:
        return
    parser.add_argument(
        "--control-plane",
        default="127.0.0.1:50051",
        metavar="HOST:PORT[,…]",
        help="where to sync: one control plane, or replicas as a comma-separated list (a "
        "broken stream moves to the next); a DNS name may have several addresses",
    )
    parser.add_argument(
        "--workers",
        type=_positive(int),
        default=1,
        metavar="N",
        help="serve the port with N processes (one per core), each its own data-plane node "
        "(node id + /wI) (default: %(default)s)",
    )
    parser.add_argument(
        "--data-plane-token-file",
        type=Path,
        metavar="PATH",
        help="data-plane credential (else env KEYWAY_DATA_PLANE_TOKEN)",
    )
    parser.add_argument(
        "--tls-ca", type=Path, metavar="PEM", help="CA that signed the control plane's cert"
    )
    parser.add_argument(
        "--tls-client-cert", type=Path, metavar="PEM", help="client certificate for mTLS"
    )
    parser.add_argument("--tls-client-key", type=Path, metavar="PEM", help="client key for mTLS")
    parser.add_argument(
        "--allow-insecure-control-plane",
        action="store_true",
        help="follow a non-loopback control plane without --tls-ca (keys cross in clear)",
    )
    parser.add_argument(
        "--tls-cert", type=Path, metavar="PEM", help="serve HTTPS with this certificate"
    )
    parser.add_argument("--tls-key", type=Path, metavar="PEM", help="private key for --tls-cert")


def _checked(build: Callable[[], T]) -> T:
    """`build()`, with the combinations the parser cannot check one flag at a time refused,
    named by their flags (`min_attempt_time` -> `--min-attempt-time`)."""
    try:
        return build()
    except ValueError as error:
        message = re.sub(
            r"\b[a-z]+(?:_[a-z]+)+\b", lambda m: "--" + m[0].replace("_", "-"), str(error)
        )
        raise StartupError(f"invalid proxy settings: {message}") from None


def proxy_options(args: argparse.Namespace) -> ProxyOptions:
    """The proxy flags of `keyway proxy` or `keyway up`, as the proxy's options."""
    # Imported here so `keyway admin` does not load the proxy's HTTP stack.
    from data_plane.runner import AdmissionLimits, FailoverPolicy, ProxyOptions

    return _checked(
        lambda: ProxyOptions(
            policy=FailoverPolicy(
                max_attempts=args.max_attempts,
                attempt_timeout=args.attempt_timeout,
                total_deadline=args.total_deadline,
                auth_cooldown=args.auth_cooldown,
                rate_limit_default=args.rate_limit_cooldown,
                min_attempt_time=args.min_attempt_time,
            ),
            stream_idle_timeout=args.stream_idle_timeout,
            max_body_bytes=args.max_body_bytes,
            forward_organization=args.forward_openai_organization,
            admission=AdmissionLimits(
                per_access_key=args.max_concurrency_per_access_key,
                per_account=args.max_concurrency_per_account,
            ),
            max_stream_duration=args.max_stream_duration,
        )
    )


def connection_limits(args: argparse.Namespace) -> ConnectionLimits:
    """The limits on the proxy's client connections."""
    from data_plane.runner import ConnectionLimits

    return _checked(
        lambda: ConnectionLimits(
            max_header_bytes=args.max_header_bytes,
            header_read_timeout=args.header_read_timeout,
            body_read_timeout=args.body_read_timeout,
            max_connections=args.max_connections,
            keepalive_timeout=args.keepalive_timeout,
            write_timeout=args.write_timeout,
        )
    )


# Which flag sets each listener's address, per command: a refused address names it.
_HTTP = {HTTP_WHAT: "--http-listen"}
_CP = {"control plane": "--listen", **_HTTP}
_PROXY = {"proxy": "--listen"}
_BOTH = {"control plane": "--listen", "proxy": "--proxy-listen", **_HTTP}


def build_parser() -> Parser:
    parser = Parser(prog="keyway", description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--version", action="version", version=f"keyway {importlib.metadata.version('keyway')}"
    )
    parser.add_argument(
        "--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", help="log verbosity"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    help_text = "run the gRPC control plane"
    cp = commands.add_parser("control-plane", help=help_text, description=help_text)
    _add_listen(cp, "--listen", "127.0.0.1:50051", "control plane")
    _add_control_plane_options(cp)
    cp.set_defaults(func=_run, proxy=False, control_plane_on=True, listen_flags=_CP)

    help_text = "run a data-plane proxy"
    px = commands.add_parser("proxy", help=help_text, description=help_text)
    _add_listen(px, "--listen", "127.0.0.1:8080", "proxy")
    _add_proxy_options(px, standalone=True)
    px.set_defaults(func=_run, proxy=True, control_plane_on=False, listen_flags=_PROXY)

    help_text = "run a control plane and a proxy locally (what `make run` runs)"
    up = commands.add_parser("up", help=help_text, description=help_text)
    _add_listen(up, "--listen", "127.0.0.1:50051", "control plane")
    _add_listen(up, "--proxy-listen", "127.0.0.1:8080", "proxy")
    up.add_argument(
        "--mock-upstream",
        action="store_true",
        help="also run the mock upstream and point every built-in provider at it: "
        "works without a provider account (keys sk-mock-ok-…)",
    )
    _add_control_plane_options(up)
    _add_proxy_options(up, standalone=False)
    up.set_defaults(func=_run, proxy=True, control_plane_on=True, listen_flags=_BOTH)

    help_text = "run a mock OpenAI/Anthropic upstream (behaviour chosen by the provider key)"
    mock = commands.add_parser("mock-upstream", help=help_text, description=help_text)
    _add_listen(mock, "--listen", "127.0.0.1:9000", "mock upstream")
    mock.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="MS", help="added before every response"
    )
    mock.add_argument(
        "--chunk-delay-ms", type=float, default=1.0, metavar="MS", help="between stream events"
    )
    mock.set_defaults(func=_run_mock, listen_flags={"mock upstream": "--listen"})

    help_text = "the stack against a mock upstream, showing failover (what `make demo` runs)"
    demo = commands.add_parser("demo", help=help_text, description=help_text)
    _add_listen(demo, "--listen", "127.0.0.1:0", "control plane")
    _add_listen(demo, "--proxy-listen", "127.0.0.1:8080", "proxy")
    demo.set_defaults(func=_run_demo, listen_flags=_BOTH)

    help_text = "revoke every operator token and write a new one to the data directory"
    reset = commands.add_parser(
        "reset-operator-token",
        help=help_text,
        description="Local recovery when every operator token is lost or in the wrong "
        "hands: revokes all operator credentials and writes the token of a new one to "
        "DATA_DIR/operator.token (0600). Safe while the control plane runs.",
    )
    reset.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="the control plane's data directory (default: $KEYWAY_DATA_DIR, else .keyway)",
    )
    _add_database_options(reset)
    reset.set_defaults(func=_reset_operator_token)

    add_admin_parser(commands)
    return parser


def _reset_operator_token(args: argparse.Namespace) -> int:
    from control_plane.bootstrap import reset_operator_token
    from control_plane.server import open_data_dir

    storage = _storage(args)
    data_dir = storage.data_dir
    if not storage.database_url and not (data_dir / "keyway.db").exists():
        raise StartupError(f"no control plane data in {data_dir} (see --data-dir)")
    with open_data_dir(storage) as (store, _):
        path = reset_operator_token(store, data_dir)
        store.close()
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
        print(_mock_line(server.url, server.base_url), flush=True)

    logging.basicConfig(level=args.log_level, format="%(levelname)s %(name)s: %(message)s")
    uvloop.run(main_async(args.listen, args.latency_ms, args.chunk_delay_ms, on_ready=ready))
    return 0


def _mock_line(url: str, base_url: str) -> str:
    # The base URL is the one to configure: without `/v1` every path is a 404.
    return f"keyway: mock upstream listening on {url} (provider base URL {base_url})"


def _proxy_token(args: argparse.Namespace) -> str:
    path: Path | None = args.data_plane_token_file
    if path is not None:
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as error:
            raise StartupError(
                f"cannot read --data-plane-token-file {path}: {(error.strerror or '').lower()}; "
                "the control plane writes one to DATA_DIR/data-plane.token on first start, "
                "or create one with `keyway admin data-plane-credentials create`"
            ) from None
        if not token:
            raise StartupError(f"--data-plane-token-file {path} is empty")
        return token
    token = os.environ.get("KEYWAY_DATA_PLANE_TOKEN", "").strip()
    if not token:
        raise StartupError(
            "no data-plane token: pass --data-plane-token-file PATH "
            "(e.g. .keyway/data-plane.token) or set KEYWAY_DATA_PLANE_TOKEN"
        )
    return token


def _data_dir(args: argparse.Namespace) -> Path:
    given: Path | None = args.data_dir
    return given or Path(os.environ.get("KEYWAY_DATA_DIR") or ".keyway")


def _proxy_settings(args: argparse.Namespace, control_plane: Any) -> ProxySettings:
    """`keyway proxy` follows the control plane it is given; `keyway up` the one beside it."""
    from data_plane.runner import ProxySettings, this_worker

    tls: tuple[Path | None, ...] = (None,) * 5
    if control_plane is None:
        listen, address, token = args.listen, args.control_plane, _proxy_token(args)
        cache_dir, allow_insecure = args.cache_dir, args.allow_insecure_control_plane
        tls = (args.tls_ca, args.tls_client_cert, args.tls_client_key, args.tls_cert, args.tls_key)
    else:
        host = args.listen.rpartition(":")[0]
        if host.strip("[]") in ("", "0.0.0.0", "::"):  # noqa: S104 - a comparison
            host = "127.0.0.1"  # listening everywhere includes here
        listen, address = args.proxy_listen, f"{host}:{control_plane.port}"
        token = control_plane.tokens.data_plane.read_text(encoding="utf-8").strip()
        cache_dir = args.cache_dir or _data_dir(args) / "proxy-cache"
        # The control plane next to it already refused plaintext unless told.
        allow_insecure = args.allow_insecure_remote
    tls_ca, tls_client_cert, tls_client_key, tls_cert, tls_key = tls
    return ProxySettings(
        listen=listen,
        control_plane=address,
        token=token,
        cache_dir=cache_dir,
        node_id=args.node_id,
        pool=args.pool,
        tls_ca=tls_ca,
        tls_client_cert=tls_client_cert,
        tls_client_key=tls_client_key,
        options=proxy_options(args),
        limits=connection_limits(args),
        tls_cert=tls_cert,
        tls_key=tls_key,
        allow_insecure_control_plane=allow_insecure,
        max_snapshot_age=args.max_snapshot_age,
        worker=this_worker() if control_plane is None else None,
        observe=observe_settings(args),
    )


def observe_settings(args: argparse.Namespace) -> ObserveSettings:
    from data_plane.runner import LogFormat, ObserveSettings

    if args.otlp_endpoint and importlib.util.find_spec("opentelemetry.sdk") is None:
        raise StartupError(
            "--otlp-endpoint needs OpenTelemetry: pip install 'keyway[tracing]' "
            "(opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http)"
        )
    return ObserveSettings(
        records=args.usage_records == "on",
        buffer_records=args.usage_buffer,
        metrics=args.metrics == "on",
        metrics_key_labels=args.metrics_key_labels,
        request_log=LogFormat(args.request_log),
        otlp_endpoint=args.otlp_endpoint,
    )


async def _serve(args: argparse.Namespace) -> None:
    from control_plane.server import ControlPlane, Settings
    from data_plane.mock_upstream.server import MockServer
    from data_plane.runner import ProxyRunner

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)

    if args.control_plane_on and args.proxy:
        # Both ports are checked before either listener starts.
        check_free(args.listen, "control plane")
        check_free(args.proxy_listen, "proxy")
        if args.http_listen is not None:
            check_free(args.http_listen, HTTP_WHAT)
    # Whatever started is stopped again, in reverse order, also when a later part fails.
    async with contextlib.AsyncExitStack() as running:
        base_urls: dict[str, str] = {}
        if getattr(args, "mock_upstream", False):
            mock = MockServer("127.0.0.1:0")
            running.push_async_callback(mock.stop)
            await mock.start()
            print(_mock_line(mock.url, mock.base_url), flush=True)
            base_urls = dict.fromkeys(sorted(BUILT_IN_IDS), mock.base_url)

        control_plane = None
        if args.control_plane_on:
            storage = _storage(args)
            settings = Settings(
                listen=args.listen,
                data_dir=storage.data_dir,
                database_url=storage.database_url,
                master_key_file=storage.master_key_file,
                provider_base_urls=base_urls | dict(args.provider_base_url),
                allow_private_upstreams=args.allow_private_upstreams,
                tls_cert=args.tls_cert,
                tls_key=args.tls_key,
                tls_client_ca=args.tls_client_ca,
                allow_insecure_remote=args.allow_insecure_remote,
                quotas=_quotas(args),
                forget_disconnected_after=args.forget_disconnected_after,
                reflection=args.reflection,
                http_listen=args.http_listen,
                replica_id=args.replica_id,
                model_prices={**catalog.PRICES, **(args.model_prices or {})},
                usage_retention=args.usage_retention_days * 86400,
                rollup_retention=args.usage_rollup_retention_days * 86400,
            )
            control_plane = ControlPlane(settings)
            running.push_async_callback(control_plane.stop)
            port = await control_plane.start()
            host = settings.listen.rpartition(":")[0]
            print(f"keyway: control plane listening on {host}:{port}", flush=True)
            if control_plane.http is not None:
                http_host = str(settings.http_listen).rpartition(":")[0]
                url = f"{control_plane.http.scheme}://{http_host}:{control_plane.http.port}"
                print(
                    f"keyway: HTTP API on {url} (OpenAPI at {url}/openapi.json, "
                    f"metrics at {url}/metrics)",
                    flush=True,
                )

        if args.proxy:
            proxy_settings = _proxy_settings(args, control_plane)
            proxy = ProxyRunner(proxy_settings)
            running.push_async_callback(proxy.stop)
            await proxy.start()
            host = proxy_settings.listen.rpartition(":")[0]
            scheme = "https" if proxy_settings.tls_cert else "http"
            print(f"keyway: proxy listening on {scheme}://{host}:{proxy.port}", flush=True)

        await stopping.wait()
        print("keyway: shutting down", flush=True)


def _run(args: argparse.Namespace) -> int:
    from data_plane.runner import this_worker
    from data_plane.shared.hardening import disable_core_dumps

    # Before any provider key is read: a core dump would write them all to disk.
    disable_core_dumps()
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.proxy and not args.control_plane_on and args.workers > 1 and this_worker() is None:
        return _supervise(args)
    # uvloop: the proxy's event loop is its hot path (see the README's benchmarks).
    uvloop.run(_serve(args))
    return 0


def _supervise(args: argparse.Namespace) -> int:
    """`keyway proxy --workers N`: the settings are checked here, once, then N copies of
    this command serve the port (`data_plane.workers`)."""
    from data_plane.runner import Supervisor, check_transport, worker_command

    check_transport(_checked(lambda: _proxy_settings(args, None)))
    supervisor = Supervisor(args.listen, args.workers, worker_command(args.argv))
    host = args.listen.rpartition(":")[0]
    scheme = "https" if args.tls_cert else "http"
    print(
        f"keyway: proxy listening on {scheme}://{host}:{supervisor.port} ({args.workers} workers)",
        flush=True,
    )
    return supervisor.run()


def main(argv: Sequence[str] | None = None) -> int:
    args, unknown = build_parser().parse_known_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if unknown:
        # Reported by the subcommand they were given to, with that subcommand's usage.
        args.usage_parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    try:
        return int(args.func(args))
    except (StartupError, UnsafePathError) as error:
        message = str(error)
        flags: dict[str, str] = getattr(args, "listen_flags", {})
        if isinstance(error, ListenError) and error.what in flags:
            flag = flags[error.what]
            message += f"; {flag} HOST:PORT sets the {error.what}'s address"
        print(f"keyway: error: {message}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
