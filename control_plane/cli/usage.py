"""`keyway admin usage` and `keyway admin requests get`: what proxies served, as tables.

`usage` sums requests, attempts, failovers, errors, tokens and cost over a time range
(`--since 24h` by default; durations like `30m`, `7d`, or UTC dates and times like
`2025-12-01` or `2025-12-01T08:00`), by `--by model` (default) or access key, provider
key, provider or account (repeatable), optionally per hour or day (`--bucket`).
`requests get` shows every attempt of one request id (the `x-keyway-request-id` the
client received).
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeAlias

from google.protobuf.timestamp_pb2 import Timestamp
from keyway.v1 import usage_pb2, usage_pb2_grpc

from control_plane.cli import output, rpc
from control_plane.cli.parsing import Parser

_Action = Callable[[argparse.Namespace, rpc.Session], None]
_Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"
_Leaf = Callable[[_Subparsers, str, str, _Action], argparse.ArgumentParser]

_DIMENSIONS = {
    "model": (usage_pb2.USAGE_DIMENSION_MODEL, "MODEL", "model"),
    "provider": (usage_pb2.USAGE_DIMENSION_PROVIDER, "PROVIDER", "provider_id"),
    "provider-key": (usage_pb2.USAGE_DIMENSION_PROVIDER_KEY, "PROVIDER KEY", "provider_key_id"),
    "access-key": (usage_pb2.USAGE_DIMENSION_ACCESS_KEY, "ACCESS KEY", "access_key_id"),
    "account": (usage_pb2.USAGE_DIMENSION_ACCOUNT, "ACCOUNT", "account_id"),
}
_BUCKETS = {
    "none": usage_pb2.USAGE_BUCKET_UNSPECIFIED,
    "hour": usage_pb2.USAGE_BUCKET_HOUR,
    "day": usage_pb2.USAGE_BUCKET_DAY,
}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)([mhd])")
_UNIT = {"m": 60, "h": 3600, "d": 86400}
_TOTALS = ("requests", "attempts", "failovers", "input_tokens", "output_tokens", "cached_tokens")


def moment(text: str, now: float | None = None) -> float:
    """A duration back from now (`90m`, `24h`, `7d`) or a UTC date or date-time, as epoch
    seconds; argparse reports the ValueError's message."""
    now = time.time() if now is None else now
    matched = _DURATION.fullmatch(text)
    if matched:
        return now - float(matched[1]) * _UNIT[matched[2]]
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration like 24h or 7d, or a UTC date like 2025-12-01: {text!r}"
        ) from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()


def _timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromMicroseconds(int(seconds * 1e6))
    return ts


def add_usage_commands(groups: _Subparsers, leaf: _Leaf) -> None:
    _add_usage_flags(
        leaf(groups, "usage", "requests, tokens and cost per key and model", _list_usage)
    )
    requests = groups.add_parser("requests", help="what happened to one request")
    request_verbs = requests.add_subparsers(dest="admin_verb", metavar="COMMAND", required=True)
    get = leaf(
        request_verbs,
        "get",
        "every upstream attempt of a request: key, outcome, timings, tokens, cost",
        _get_request,
    )
    get.add_argument("request_id", metavar="REQUEST_ID", help="the x-keyway-request-id header")


def _add_usage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--since", type=moment, default=None, metavar="WHEN", help="start (default: 24h ago)"
    )
    parser.add_argument("--until", type=moment, default=None, metavar="WHEN", help="end (now)")
    parser.add_argument(
        "--by",
        action="append",
        choices=sorted(_DIMENSIONS),
        default=None,
        help="group by (repeatable; default: model)",
    )
    parser.add_argument(
        "--bucket", choices=sorted(_BUCKETS), default="none", help="one row per hour or day"
    )
    for flag, field in (
        ("--account", "account_id"),
        ("--access-key", "access_key_id"),
        ("--provider-key", "provider_key_id"),
        ("--provider", "provider_id"),
        ("--model", "model"),
    ):
        parser.add_argument(flag, dest=f"only_{field}", default="", metavar="ID", help="only this")


def _errors_cell(row: Any) -> str:
    return " ".join(f"{k}:{v}" for k, v in sorted(row.errors.items())) or "-"


def _cost_cell(cost: float, unpriced: int) -> str:
    text = f"${cost:.4f}"
    return f"{text} (+{unpriced} unpriced)" if unpriced else text


def _list_usage(args: argparse.Namespace, session: rpc.Session) -> None:
    by = args.by or ["model"]
    request = usage_pb2.ListUsageRequest(
        bucket=_BUCKETS[args.bucket],
        group_by=[_DIMENSIONS[name][0] for name in by],
        account_id=args.only_account_id,
        access_key_id=args.only_access_key_id,
        provider_key_id=args.only_provider_key_id,
        provider_id=args.only_provider_id,
        model=args.only_model,
    )
    if args.since is not None:
        request.start_time.CopyFrom(_timestamp(args.since))
    if args.until is not None:
        request.end_time.CopyFrom(_timestamp(args.until))
    stub = usage_pb2_grpc.UsageServiceStub(session.channel)
    response = session.call(stub.ListUsage, request)
    if args.json:
        print(output.to_json(response))
        return
    start = output.format_timestamp(response.start_time.seconds)
    end = output.format_timestamp(response.end_time.seconds)
    print(f"Usage from {start} to {end}")
    headers = [*(["BUCKET"] if args.bucket != "none" else []), *(_DIMENSIONS[b][1] for b in by)]
    headers += ["REQUESTS", "ATTEMPTS", "FAILOVERS", "ERRORS", "INPUT", "OUTPUT", "CACHED", "COST"]
    rows: list[list[str]] = []
    for row in response.rows:
        cells = [output.format_timestamp(row.bucket_start.seconds)] if args.bucket != "none" else []
        cells += [getattr(row, _DIMENSIONS[b][2]) or "-" for b in by]
        cells += [str(getattr(row, name)) for name in _TOTALS[:3]]
        cells.append(_errors_cell(row))
        cells += [str(getattr(row, name)) for name in _TOTALS[3:]]
        cells.append(_cost_cell(row.cost_usd, row.unpriced_attempts))
        rows.append(cells)
    if len(response.rows) > 1:
        rows.append(_total_row(response.rows, len(headers) - 8))
    print(output.render_table(headers, rows) if rows else "No usage in this range.")


def _total_row(rows: Sequence[Any], label_cells: int) -> list[str]:
    sums = {name: sum(getattr(r, name) for r in rows) for name in _TOTALS}
    errors: dict[str, int] = {}
    for r in rows:
        for kind, count in r.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    cost = sum(r.cost_usd for r in rows)
    unpriced = sum(r.unpriced_attempts for r in rows)
    return [
        "TOTAL",
        *[""] * (label_cells - 1),
        *(str(sums[name]) for name in _TOTALS[:3]),
        " ".join(f"{k}:{v}" for k, v in sorted(errors.items())) or "-",
        *(str(sums[name]) for name in _TOTALS[3:]),
        _cost_cell(cost, unpriced),
    ]


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value else "-"


def _get_request(args: argparse.Namespace, session: rpc.Session) -> None:
    stub = usage_pb2_grpc.UsageServiceStub(session.channel)
    response = session.call(
        stub.GetRequest, usage_pb2.GetRequestRequest(request_id=args.request_id)
    )
    if args.json:
        print(output.to_json(response))
        return
    r = response.request
    print(
        output.render_table(
            ["REQUEST", "TIME", "ACCOUNT", "ACCESS KEY", "SURFACE", "MODEL"],
            [
                [
                    r.request_id,
                    output.format_timestamp(r.request_time.seconds),
                    r.account_id,
                    r.access_key_id,
                    r.surface,
                    r.requested_model or "-",
                ]
            ],
        )
    )
    print()
    headers = ["#", "PROVIDER", "UPSTREAM MODEL", "PROVIDER KEY", "OUTCOME", "STATUS"]
    headers += ["HEADERS", "FIRST BYTE", "DURATION", "IN", "OUT", "CACHED", "COST", "REASON"]
    rows = [
        [
            str(a.attempt),
            a.provider_id or "-",
            a.upstream_model or "-",
            a.provider_key_id or "-",
            a.outcome,
            str(a.status or "-"),
            _ms(a.headers_ms),
            _ms(a.first_byte_ms),
            _ms(a.duration_ms),
            *(
                (str(a.input_tokens), str(a.output_tokens), str(a.cached_tokens))
                if a.tokens_known
                else ("-", "-", "-")
            ),
            f"${a.cost_usd:.6f}" if a.cost_known else "-",
            a.reason or "-",
        ]
        for a in r.attempts
    ]
    print(output.render_table(headers, rows))
