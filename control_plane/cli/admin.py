"""`keyway admin …`: a command-line client for every admin RPC.

The resources share one shape (AIP-style Get/List/Create/Update/Delete with the same
naming), so commands are generated from the `_RESOURCES` table; only the real actions
(rotations, configuration files, the provider catalog, proxy status) have their own
handlers.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeAlias

import grpc
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message
from keyway.v1 import (
    access_key_configurations_pb2,
    access_key_configurations_pb2_grpc,
    access_keys_pb2,
    access_keys_pb2_grpc,
    accounts_pb2,
    accounts_pb2_grpc,
    admin_api_keys_pb2,
    admin_api_keys_pb2_grpc,
    data_planes_pb2,
    data_planes_pb2_grpc,
    master_keys_pb2,
    master_keys_pb2_grpc,
    operator_credentials_pb2,
    operator_credentials_pb2_grpc,
    provider_keys_pb2,
    provider_keys_pb2_grpc,
    providers_pb2,
    providers_pb2_grpc,
)

from control_plane.cli import edits, json_input, output, rpc, usage
from control_plane.cli.parsing import Parser

_Action = Callable[[argparse.Namespace, rpc.Session], None]
_Column = tuple[str, Callable[[Any], str]]
_Subparsers: TypeAlias = "argparse._SubParsersAction[Parser]"

_PAGE_SIZE = 100


def add_admin_parser(subparsers: _Subparsers) -> None:
    """Registers `admin` and every subcommand; each leaf sets `func(args) -> exit code`."""
    admin = subparsers.add_parser(
        "admin",
        help="manage accounts, keys, configurations, providers and data planes over the admin API",
        description="A gRPC client for the Keyway admin API.",
    )
    _add_connection_options(admin, leaf=False)
    groups = admin.add_subparsers(dest="admin_resource", metavar="RESOURCE", required=True)
    verbs = {resource.command: _add_resource(groups, resource) for resource in _RESOURCES}
    _add_configuration_file_commands(verbs["configurations"])
    _add_rotate_provider_key(verbs["provider-keys"])
    _add_rotate_operator_credential(verbs["operator-credentials"])
    _add_providers(groups)
    _add_master_key(groups)
    _add_data_planes(groups)
    usage.add_usage_commands(groups, _leaf)


# --- the resource table -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Flag:
    """A flag that sets one field of the resource message on create and/or update."""

    flag: str
    path: str
    help: str
    on_create: Literal["required", "optional", "never"] = "optional"
    on_update: bool = True
    type: Callable[[str], Any] = str
    repeated: bool = False
    metavar: str | None = None


@dataclass(frozen=True, slots=True)
class _Param:
    """A flag that sets one field of the request itself (a list filter or create input)."""

    flag: str
    path: str
    help: str
    required: bool = False
    secret: bool = False  # `-` reads it from stdin


_VERBS = frozenset({"list", "get", "create", "update", "delete"})


@dataclass(frozen=True, slots=True)
class _Resource:
    command: str
    noun: str
    module: ModuleType  # holds `<rpc>` and the `<Verb><rpc>Request` messages
    stub: Callable[[grpc.Channel], Any]
    rpc: str  # e.g. ProviderKey: GetProviderKey, ListProviderKeys, ...
    field: str  # the resource's field in requests and responses
    list_field: str
    columns: tuple[_Column, ...]
    flags: tuple[_Flag, ...] = ()
    create_params: tuple[_Param, ...] = ()
    list_params: tuple[_Param, ...] = ()
    returns_token: bool = False
    forced_delete: bool = False
    optional_get_id: bool = False
    verbs: frozenset[str] = _VERBS
    """The standard methods the service has; create and update also need `flags`."""
    pausable: bool = False
    """Has `enable`/`disable` commands (an update of the `disabled` field)."""
    etag: bool = True
    """Whether Delete takes an etag."""


def _col(header: str, field: str) -> _Column:
    return header, lambda message: output.format_field(message, field)


_STATE: _Column = ("STATE", lambda message: "disabled" if message.disabled else "enabled")


def _enum_type(enum: Any) -> Callable[[str], int]:
    def convert(label: str) -> int:
        try:
            return output.enum_number(enum, label)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def _provider_model(text: str) -> providers_pb2.ProviderModel:
    model_id, _, upstream_id = text.partition("=")
    if not model_id:
        raise argparse.ArgumentTypeError(f"expected ID or ID=UPSTREAM_ID, got {text!r}")
    return providers_pb2.ProviderModel(id=model_id, upstream_id=upstream_id)


def _configuration_ref(text: str) -> str:
    # `none` unlinks: an empty configuration_id means the default allow-all routing.
    return "" if text == "none" else text


_NAME = _Flag("--name", "name", "human-readable name", on_create="required")
_DESCRIPTION = _Flag("--description", "description", "free text")
_METADATA = _Flag("--metadata", "metadata", "free string for your own use")
_FORMAT = providers_pb2.ApiFormat.DESCRIPTOR
_AUTH_STYLE = providers_pb2.AuthStyle.DESCRIPTOR

_RESOURCES = (
    _Resource(
        command="accounts",
        noun="account",
        module=accounts_pb2,
        stub=accounts_pb2_grpc.AccountServiceStub,
        rpc="Account",
        field="account",
        list_field="accounts",
        columns=(
            _col("ID", "id"),
            _col("DISPLAY NAME", "display_name"),
            _col("DESCRIPTION", "description"),
            _col("CREATED", "create_time"),
            ("SNAPSHOT", lambda message: output.snapshot_state(message.snapshot_status)),
        ),
        flags=(
            _Flag("--display-name", "display_name", "human-readable name", on_create="required"),
            _DESCRIPTION,
            _METADATA,
        ),
        forced_delete=True,
        optional_get_id=True,
    ),
    _Resource(
        command="admin-keys",
        noun="admin API key",
        module=admin_api_keys_pb2,
        stub=admin_api_keys_pb2_grpc.AdminApiKeyServiceStub,
        rpc="AdminApiKey",
        field="admin_api_key",
        list_field="admin_api_keys",
        columns=(
            _col("ID", "id"),
            _col("ACCOUNT", "account_id"),
            _col("NAME", "name"),
            _col("TOKEN", "redacted_token"),
            _col("CREATED", "create_time"),
        ),
        flags=(_NAME, _DESCRIPTION, _METADATA),
        create_params=(_Param("--account", "account_id", "account id (default: your own)"),),
        list_params=(_Param("--account", "account_id", "account id (default: your own)"),),
        returns_token=True,
    ),
    _Resource(
        command="provider-keys",
        noun="provider key",
        module=provider_keys_pb2,
        stub=provider_keys_pb2_grpc.ProviderKeyServiceStub,
        rpc="ProviderKey",
        field="provider_key",
        list_field="provider_keys",
        columns=(
            _col("ID", "id"),
            _col("PROVIDER", "provider_id"),
            _col("NAME", "name"),
            _STATE,
            _col("VALUE", "redacted_value"),
            _col("LAST USED", "last_used_time"),
            _col("LAST ERROR", "last_error"),
        ),
        flags=(
            _Flag(
                "--provider",
                "provider_id",
                "provider id, e.g. openai",
                on_create="required",
                on_update=False,
            ),
            _NAME,
            _DESCRIPTION,
            _METADATA,
        ),
        create_params=(
            _Param(
                "--value",
                "value",
                "the secret key; `-` reads it from stdin",
                required=True,
                secret=True,
            ),
        ),
        list_params=(_Param("--provider", "provider_id", "only keys of this provider"),),
        pausable=True,
    ),
    _Resource(
        command="access-keys",
        noun="access key",
        module=access_keys_pb2,
        stub=access_keys_pb2_grpc.AccessKeyServiceStub,
        rpc="AccessKey",
        field="access_key",
        list_field="access_keys",
        columns=(
            _col("ID", "id"),
            _col("NAME", "name"),
            _STATE,
            _col("TOKEN", "redacted_token"),
            _col("CONFIGURATION", "configuration_id"),
            _col("LAST USED", "last_used_time"),
        ),
        flags=(
            _NAME,
            _DESCRIPTION,
            _METADATA,
            _Flag(
                "--configuration",
                "configuration_id",
                "configuration id, or `none` for the default allow-all routing",
                type=_configuration_ref,
                metavar="ID|none",
            ),
        ),
        list_params=(_Param("--configuration", "configuration_id", "only keys linked to it"),),
        returns_token=True,
        pausable=True,
    ),
    _Resource(
        command="configurations",
        noun="configuration",
        module=access_key_configurations_pb2,
        stub=access_key_configurations_pb2_grpc.AccessKeyConfigurationServiceStub,
        rpc="AccessKeyConfiguration",
        field="configuration",
        list_field="configurations",
        columns=(
            _col("ID", "id"),
            _col("NAME", "name"),
            _col("ACCESS KEYS", "access_key_count"),
            ("RULES", lambda message: str(len(message.router.rules))),
            _col("UPDATED", "update_time"),
        ),
    ),
    _Resource(
        command="custom-providers",
        noun="custom provider",
        module=providers_pb2,
        stub=providers_pb2_grpc.ProviderServiceStub,
        rpc="CustomProvider",
        field="custom_provider",
        list_field="custom_providers",
        columns=(
            _col("ID", "id"),
            _col("PROVIDER", "provider_id"),
            _col("NAME", "name"),
            _col("FORMATS", "formats"),
            _col("AUTH", "auth_style"),
            _col("BASE URL", "base_url"),
        ),
        flags=(
            _Flag(
                "--provider-id",
                "provider_id",
                "id used in configurations and `provider:model`",
                on_create="required",
                on_update=False,
            ),
            _NAME,
            _Flag("--base-url", "base_url", "upstream base URL", on_create="required"),
            _Flag(
                "--format",
                "formats",
                "API format the upstream speaks (repeat for several)",
                on_create="required",
                type=_enum_type(_FORMAT),
                repeated=True,
                metavar="{" + ",".join(output.enum_labels(_FORMAT)) + "}",
            ),
            _Flag(
                "--auth-style",
                "auth_style",
                "how the key is sent (default: from the first format)",
                type=_enum_type(_AUTH_STYLE),
                metavar="{" + ",".join(output.enum_labels(_AUTH_STYLE)) + "}",
            ),
            _Flag(
                "--model",
                "models",
                "a served model, optionally with the id sent upstream (repeat for several)",
                type=_provider_model,
                repeated=True,
                metavar="ID[=UPSTREAM_ID]",
            ),
            _DESCRIPTION,
            _METADATA,
        ),
    ),
    _Resource(
        command="data-plane-credentials",
        noun="data-plane credential",
        module=data_planes_pb2,
        stub=data_planes_pb2_grpc.DataPlaneServiceStub,
        rpc="DataPlaneCredential",
        field="credential",
        list_field="credentials",
        columns=(
            _col("ID", "id"),
            _col("NAME", "name"),
            _col("TOKEN", "redacted_token"),
            _col("CREATED", "create_time"),
        ),
        flags=(_Flag("--name", "name", "human-readable name", on_create="required"),),
        returns_token=True,
        verbs=frozenset({"list", "create", "delete"}),
        etag=False,
    ),
    _Resource(
        command="operator-credentials",
        noun="operator credential",
        module=operator_credentials_pb2,
        stub=operator_credentials_pb2_grpc.OperatorCredentialServiceStub,
        rpc="OperatorCredential",
        field="credential",
        list_field="credentials",
        columns=(
            _col("ID", "id"),
            _col("NAME", "name"),
            _col("TOKEN", "redacted_token"),
            _col("CREATED", "create_time"),
            _col("ROTATED", "update_time"),
        ),
        flags=(_Flag("--name", "name", "human-readable name", on_create="required"),),
        returns_token=True,
        verbs=frozenset({"list", "create", "delete"}),
        etag=False,
    ),
)


# --- command registration -----------------------------------------------------------


def _add_connection_options(parser: argparse.ArgumentParser, *, leaf: bool) -> None:
    # Accepted after `admin` and after the leaf. The leaf copies default to SUPPRESS:
    # argparse copies every sub-namespace attribute over the parent's, so a leaf
    # default would erase a value given after `admin`.
    def default(value: object) -> object:
        return argparse.SUPPRESS if leaf else value

    group = parser.add_argument_group("connection options")
    group.add_argument(
        "--addr",
        default=default(None),
        help=f"control plane address (default: $KEYWAY_ADDR or {rpc.DEFAULT_ADDR})",
    )
    group.add_argument(
        "--token", default=default(None), help="admin or operator token (default: $KEYWAY_TOKEN)"
    )
    group.add_argument(
        "--token-file",
        default=default(None),
        metavar="PATH",
        help=f"read the token from PATH (default: $KEYWAY_DATA_DIR/{rpc.TOKEN_FILE_NAME} "
        f"or .keyway/{rpc.TOKEN_FILE_NAME})",
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON (proto3 mapping)"
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=default(10.0),
        metavar="SECONDS",
        help="deadline of each call (default: 10)",
    )
    group.add_argument(
        "--tls-ca",
        default=default(None),
        metavar="PEM",
        help="use TLS, trusting this CA (default: $KEYWAY_TLS_CA; plaintext when unset)",
    )
    group.add_argument(
        "--tls-client-cert", default=default(None), metavar="PEM", help="client cert for mTLS"
    )
    group.add_argument(
        "--allow-insecure-remote",
        action="store_true",
        default=default(False),
        help="allow plaintext to a control plane that is not on loopback "
        f"(default: refused; also ${rpc.INSECURE_ENV}=1)",
    )
    group.add_argument(
        "--tls-client-key", default=default(None), metavar="PEM", help="client key for mTLS"
    )


def _leaf(
    verbs: _Subparsers, name: str, help_text: str, action: _Action
) -> argparse.ArgumentParser:
    parser = verbs.add_parser(name, help=help_text, description=help_text)
    _add_connection_options(parser, leaf=True)
    parser.set_defaults(func=_handler(action))
    return parser


def _add_resource(groups: _Subparsers, resource: _Resource) -> _Subparsers:
    group = groups.add_parser(resource.command, help=f"manage {resource.noun}s")
    verbs = group.add_subparsers(dest="admin_verb", metavar="COMMAND", required=True)
    noun = resource.noun

    if "list" in resource.verbs:
        listing = _leaf(verbs, "list", f"list {noun}s", partial(_list, resource))
        for param in resource.list_params:
            listing.add_argument(
                param.flag, dest=param.path, metavar=_metavar(param.flag), help=param.help
            )
        _add_paging_options(listing)

    if "get" in resource.verbs:
        get = _leaf(verbs, "get", f"show one {noun}", partial(_get, resource))
        if resource.optional_get_id:
            get.add_argument("id", nargs="?", default="", help=f"{noun} id (default: your own)")
        else:
            get.add_argument("id", help=f"{noun} id")

    if "delete" in resource.verbs:
        delete = _leaf(verbs, "delete", f"delete {_a(noun)}", partial(_delete, resource))
        delete.add_argument("id", help=f"{noun} id")
        if resource.etag:
            _add_etag_option(delete)
        if resource.forced_delete:
            delete.add_argument(
                "--force", action="store_true", help="also delete everything it holds"
            )

    if resource.flags and "create" in resource.verbs:
        create = _leaf(verbs, "create", f"create {_a(noun)}", partial(_create, resource))
        for flag in resource.flags:
            if flag.on_create != "never":
                _add_flag(create, flag, required=flag.on_create == "required")
        for param in resource.create_params:
            create.add_argument(
                param.flag,
                dest=param.path,
                metavar=_metavar(param.flag),
                required=param.required,
                help=param.help,
            )

    if resource.flags and "update" in resource.verbs:
        update = _leaf(verbs, "update", f"change {_a(noun)}", partial(_update, resource))
        update.add_argument("id", help=f"{noun} id")
        for flag in resource.flags:
            if flag.on_update:
                _add_flag(update, flag, required=False)
        _add_etag_option(update)

    if resource.pausable:
        for verb, disabled, help_text in (
            ("disable", True, f"disable {_a(noun)}: " + _PAUSE_EFFECTS[resource.command]),
            ("enable", False, f"enable a disabled {noun} again"),
        ):
            switch = _leaf(verbs, verb, help_text, partial(_set_disabled, resource, disabled))
            switch.add_argument("id", help=f"{noun} id")
            _add_etag_option(switch)
    return verbs


_PAUSE_EFFECTS = {
    "provider-keys": "it is kept, but proxies skip it when routing",
    "access-keys": "it is kept, but proxies refuse it (401 access_key_disabled)",
}


def _add_flag(parser: argparse.ArgumentParser, flag: _Flag, *, required: bool) -> None:
    parser.add_argument(
        flag.flag,
        dest=flag.path,
        type=flag.type,
        action="append" if flag.repeated else "store",
        required=required,
        metavar=flag.metavar or _metavar(flag.flag),
        help=flag.help,
    )


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


def _metavar(flag: str) -> str:
    return flag.removeprefix("--").upper().replace("-", "_")


def _add_etag_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--etag", default="", help="only act if the etag still matches")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_paging_options(parser: argparse.ArgumentParser) -> None:
    paging = parser.add_argument_group("paging (default: fetch every page)")
    paging.add_argument("--page-size", type=_positive_int, metavar="N", help="fetch one page")
    paging.add_argument("--page-token", metavar="T", help="fetch the page after this token")


def _add_configuration_file_commands(verbs: _Subparsers) -> None:
    file_help = "configuration JSON (the documented shape); `-` reads stdin"
    create = _leaf(verbs, "create", "create a configuration from a file", _create_configuration)
    create.add_argument("--file", required=True, metavar="PATH", help=file_help)
    update = _leaf(
        verbs,
        "update",
        "change a configuration: the top-level fields present in the file are replaced "
        "(with --merge, the file is a JSON merge patch); prints the change as a diff",
        _update_configuration,
    )
    update.add_argument("id", help="configuration id")
    update.add_argument("--file", required=True, metavar="PATH", help=file_help)
    update.add_argument(
        "--merge",
        action="store_true",
        help="apply the file as a JSON merge patch (RFC 7386): objects merge, null removes, "
        "arrays replace; the write is conditional on the configuration read",
    )
    _add_etag_option(update)


def _add_rotate_provider_key(verbs: _Subparsers) -> None:
    rotate = _leaf(
        verbs, "rotate", "replace a provider key's secret; the id stays the same", _rotate
    )
    rotate.add_argument("id", help="provider key id")
    rotate.add_argument("--value", required=True, help="the new secret; `-` reads it from stdin")
    rotate.add_argument("--name", default="", help="new name (default: keep the current one)")
    _add_etag_option(rotate)


def _add_rotate_operator_credential(verbs: _Subparsers) -> None:
    rotate = _leaf(
        verbs,
        "rotate",
        "replace an operator credential's token: the old one stops working at once",
        _rotate_operator_credential,
    )
    rotate.add_argument("id", help="operator credential id (`op_…`)")


def _add_providers(groups: _Subparsers) -> None:
    group = groups.add_parser("providers", help="the provider catalog")
    verbs = group.add_subparsers(dest="admin_verb", metavar="COMMAND", required=True)
    _leaf(verbs, "list", "list built-in and custom providers", _list_providers)


def _add_data_planes(groups: _Subparsers) -> None:
    group = groups.add_parser("data-planes", help="proxies and the snapshot each one serves")
    verbs = group.add_subparsers(dest="admin_verb", metavar="COMMAND", required=True)
    _leaf(
        verbs,
        "list",
        "list the proxies the control plane has seen and whether each serves the latest "
        "snapshot (account admins see a redacted view)",
        _list_data_planes,
    )
    delete = _leaf(
        verbs,
        "delete",
        "forget a disconnected proxy (a retired node); operator only",
        _delete_data_plane,
    )
    delete.add_argument("node_id", metavar="NODE_ID", help="node id as listed")


def _add_master_key(groups: _Subparsers) -> None:
    group = groups.add_parser("master-key", help="the key-encryption key (operator only)")
    verbs = group.add_subparsers(dest="admin_verb", metavar="COMMAND", required=True)
    rotate = _leaf(
        verbs,
        "rotate",
        "make a new key-encryption key current and re-wrap every data key",
        _rotate_master_key,
    )
    rotate.add_argument(
        "--resume-only",
        action="store_true",
        help="only finish an interrupted rotation; do not create a new key",
    )


# --- handlers -----------------------------------------------------------------------


def _handler(action: _Action) -> Callable[[argparse.Namespace], int]:
    def handle(args: argparse.Namespace) -> int:
        try:
            target = rpc.resolve_target(args)
        except rpc.UsageError as err:
            return _usage_error(err)
        try:
            with rpc.open_session(target) as session:
                action(args, session)
        except rpc.UsageError as err:
            return _usage_error(err)
        except grpc.RpcError as err:
            print(rpc.describe_error(err, target), file=sys.stderr)
            return 1
        return 0

    return handle


def _usage_error(err: rpc.UsageError) -> int:
    print(f"keyway: error: {err}", file=sys.stderr)
    return 2


def _rpc_name(resource: _Resource, verb: str) -> str:
    # AIP naming, which buf lint enforces: GetProviderKey, ListProviderKeys, ...
    return f"{verb}{resource.rpc}{'s' if verb == 'List' else ''}"


def _method(resource: _Resource, session: rpc.Session, verb: str) -> Any:
    return getattr(resource.stub(session.channel), _rpc_name(resource, verb))


def _request(resource: _Resource, verb: str, **fields: Any) -> Any:
    return getattr(resource.module, f"{_rpc_name(resource, verb)}Request")(**fields)


def _get(resource: _Resource, args: argparse.Namespace, session: rpc.Session) -> None:
    response = session.call(
        _method(resource, session, "Get"), _request(resource, "Get", id=args.id)
    )
    _print_resource(args, getattr(response, resource.field))


def _list(resource: _Resource, args: argparse.Namespace, session: rpc.Session) -> None:
    filters = {p.path: getattr(args, p.path) for p in resource.list_params if getattr(args, p.path)}
    paged = args.page_size is not None or args.page_token is not None
    request = _request(resource, "List", page_size=args.page_size or _PAGE_SIZE, **filters)
    request.page_token = args.page_token or ""
    method = _method(resource, session, "List")
    items: list[Message] = []
    while True:
        response = session.call(method, request)
        items.extend(getattr(response, resource.list_field))
        request.page_token = response.next_page_token
        if paged or not request.page_token:
            break
    _print_list(args, resource.columns, items, request.page_token if paged else "")


def _delete(resource: _Resource, args: argparse.Namespace, session: rpc.Session) -> None:
    request = _request(resource, "Delete", id=args.id)
    if resource.etag:
        request.etag = args.etag
    if resource.forced_delete:
        request.force = args.force
    response = session.call(_method(resource, session, "Delete"), request)
    if args.json:
        print(output.to_json(response))
    else:
        print(f"Deleted {resource.noun} {args.id}.")


def _create(resource: _Resource, args: argparse.Namespace, session: rpc.Session) -> None:
    message = getattr(resource.module, resource.rpc)()
    _apply_flags(resource, args, message, creating=True)
    request = _request(resource, "Create", **{resource.field: message})
    for param in resource.create_params:
        value = getattr(args, param.path)
        if value is not None:
            setattr(request, param.path, _read_secret(value) if param.secret else value)
    response = session.call(_method(resource, session, "Create"), request)
    if resource.returns_token:
        _print_with_token(args, response, getattr(response, resource.field))
    else:
        _print_resource(args, getattr(response, resource.field))


def _update(resource: _Resource, args: argparse.Namespace, session: rpc.Session) -> None:
    message = getattr(resource.module, resource.rpc)(id=args.id, etag=args.etag)
    paths = _apply_flags(resource, args, message, creating=False)
    if not paths:
        settable = ", ".join(flag.flag for flag in resource.flags if flag.on_update)
        raise rpc.UsageError(f"nothing to update: give at least one of {settable}")
    request = _request(
        resource, "Update", **{resource.field: message, "update_mask": FieldMask(paths=paths)}
    )
    response = session.call(_method(resource, session, "Update"), request)
    _print_resource(args, getattr(response, resource.field))


def _set_disabled(
    resource: _Resource, disabled: bool, args: argparse.Namespace, session: rpc.Session
) -> None:
    message = getattr(resource.module, resource.rpc)(id=args.id, etag=args.etag, disabled=disabled)
    request = _request(
        resource,
        "Update",
        **{resource.field: message, "update_mask": FieldMask(paths=["disabled"])},
    )
    response = session.call(_method(resource, session, "Update"), request)
    _print_resource(args, getattr(response, resource.field))


def _apply_flags(
    resource: _Resource, args: argparse.Namespace, message: Message, *, creating: bool
) -> list[str]:
    """Copies the flags that were given onto `message`; returns their field paths."""
    paths = []
    for flag in resource.flags:
        if (creating and flag.on_create == "never") or (not creating and not flag.on_update):
            continue
        value = getattr(args, flag.path, None)
        if value is None:
            continue
        if flag.repeated:
            getattr(message, flag.path).extend(value)
        else:
            setattr(message, flag.path, value)
        paths.append(flag.path)
    return paths


_CONFIGURATION_PATHS = ("name", "description", "metadata", "access", "router")
_Configuration = access_key_configurations_pb2.AccessKeyConfiguration


def _read_json_file(path: str) -> tuple[dict[str, Any], str]:
    """The JSON object in `path` (`-` is stdin) and the name to report errors under."""
    source = "<stdin>" if path == "-" else path
    if path == "-":
        text = sys.stdin.read()
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise rpc.UsageError(f"cannot read {path}: {getattr(err, 'strerror', err)}") from None
    try:
        return json_input.parse_json_object(text, source), source
    except ValueError as err:
        raise rpc.UsageError(str(err)) from None


def _content(configuration: _Configuration) -> _Configuration:
    """Only what a user writes: output-only fields (id, etag, times, counts) dropped."""
    return _Configuration(
        name=configuration.name,
        description=configuration.description,
        metadata=configuration.metadata,
        access=configuration.access if configuration.HasField("access") else None,
        router=configuration.router if configuration.HasField("router") else None,
    )


def _parse_configuration(document: dict[str, Any], source: str) -> _Configuration:
    try:
        configuration = json_input.json_to_message(document, _Configuration(), source)
    except ValueError as err:
        raise rpc.UsageError(str(err)) from None
    # Output-only fields are dropped so that `get --json` output can be edited and sent
    # back; the etag only comes from --etag, or re-applying a file would always fail.
    return _content(configuration)


def _as_document(configuration: _Configuration) -> dict[str, Any]:
    return json_format.MessageToDict(_content(configuration))


def _configurations(session: rpc.Session) -> Any:
    return access_key_configurations_pb2_grpc.AccessKeyConfigurationServiceStub(session.channel)


def _create_configuration(args: argparse.Namespace, session: rpc.Session) -> None:
    configuration = _parse_configuration(*_read_json_file(args.file))
    request = access_key_configurations_pb2.CreateAccessKeyConfigurationRequest(
        configuration=configuration
    )
    response = session.call(_configurations(session).CreateAccessKeyConfiguration, request)
    _print_warnings(response.warnings)
    _print_resource(args, response.configuration)


def _update_configuration(args: argparse.Namespace, session: rpc.Session) -> None:
    stub = _configurations(session)
    get = access_key_configurations_pb2.GetAccessKeyConfigurationRequest(id=args.id)
    current = session.call(stub.GetAccessKeyConfiguration, get).configuration
    before = _as_document(current)
    document, source = _read_json_file(args.file)
    etag = args.etag
    if args.merge:
        descriptor = _Configuration.DESCRIPTOR
        document = edits.merge_patch(before, edits.json_names(document, descriptor))
        configuration = _parse_configuration(document, source)
        after = _as_document(configuration)
        paths = [key for key in _CONFIGURATION_PATHS if before.get(key) != after.get(key)]
        # What was merged into is what gets written: a change made since is not undone.
        etag = etag or current.etag
        if not paths:
            print(f"No change: {source} leaves configuration {args.id} as it is.")
            return
    else:
        configuration = _parse_configuration(document, source)
        paths = [key for key in _CONFIGURATION_PATHS if key in document]
        if not paths:
            raise rpc.UsageError(
                f"{source} sets none of the fields an update replaces: "
                + ", ".join(_CONFIGURATION_PATHS)
            )
    configuration.id = args.id
    configuration.etag = etag
    request = access_key_configurations_pb2.UpdateAccessKeyConfigurationRequest(
        configuration=configuration, update_mask=FieldMask(paths=paths)
    )
    response = session.call(stub.UpdateAccessKeyConfiguration, request)
    _print_warnings(response.warnings)
    _print_resource(args, response.configuration)
    if not args.json:
        changes = edits.diff(before, _as_document(response.configuration))
        print("\n" + ("\n".join(changes) if changes else "No change."))


def _print_warnings(warnings: Sequence[Any]) -> None:
    for warning in warnings:
        print(f"keyway: warning: {warning.field}: {warning.description}", file=sys.stderr)


def _rotate(args: argparse.Namespace, session: rpc.Session) -> None:
    request = provider_keys_pb2.RotateProviderKeyRequest(
        id=args.id, value=_read_secret(args.value), name=args.name, etag=args.etag
    )
    stub = provider_keys_pb2_grpc.ProviderKeyServiceStub(session.channel)
    response = session.call(stub.RotateProviderKey, request)
    _print_resource(args, response.provider_key)


def _rotate_operator_credential(args: argparse.Namespace, session: rpc.Session) -> None:
    stub = operator_credentials_pb2_grpc.OperatorCredentialServiceStub(session.channel)
    request = operator_credentials_pb2.RotateOperatorCredentialRequest(id=args.id)
    response = session.call(stub.RotateOperatorCredential, request)
    _print_with_token(args, response, response.credential)


_PROVIDER_COLUMNS: tuple[_Column, ...] = (
    _col("ID", "id"),
    _col("NAME", "name"),
    _col("BUILT-IN", "built_in"),
    _col("FORMATS", "formats"),
    _col("AUTH", "auth_style"),
    ("MODELS", lambda message: str(len(message.models))),
    _col("BASE URL", "base_url"),
)


def _list_providers(args: argparse.Namespace, session: rpc.Session) -> None:
    stub = providers_pb2_grpc.ProviderServiceStub(session.channel)
    response = session.call(stub.ListProviders, providers_pb2.ListProvidersRequest())
    _print_list(args, _PROVIDER_COLUMNS, list(response.providers), "")


def _version_cell(field: str) -> Callable[[Any], str]:
    # Version 0 means none: nothing applied yet, or nothing published yet.
    return lambda message: str(getattr(message, field) or "-")


def _rejection_cell(message: Any) -> str:
    if not message.HasField("last_rejection"):
        return "-"
    rejection = message.last_rejection
    return f"version {rejection.version}: {' '.join(rejection.message.split())}"


_DATA_PLANE_STATE = data_planes_pb2.DataPlaneState.DESCRIPTOR
_DATA_PLANE_COLUMNS: tuple[_Column, ...] = (
    _col("NODE", "node_id"),
    _col("POOL", "pool"),
    ("STATE", lambda message: output.enum_name(_DATA_PLANE_STATE, message.state)),
    ("APPLIED", _version_cell("applied_version")),
    ("LATEST", _version_cell("latest_version")),
    _col("LAST SEEN", "last_seen_time"),
    ("CONTROL PLANE", lambda message: message.control_plane or "-"),
    ("LAST REJECTION", _rejection_cell),
)


def _list_data_planes(args: argparse.Namespace, session: rpc.Session) -> None:
    stub = data_planes_pb2_grpc.DataPlaneServiceStub(session.channel)
    request = data_planes_pb2.ListDataPlanesRequest(page_size=_PAGE_SIZE)
    nodes: list[Message] = []
    while True:
        response = session.call(stub.ListDataPlanes, request)
        nodes.extend(response.data_planes)
        request.page_token = response.next_page_token
        if not request.page_token:
            break
    if args.json:
        # States are shown, never typed back: IN_SYNC rather than DATA_PLANE_STATE_IN_SYNC.
        print(output.to_json_short_enums(nodes))
        return
    _print_list(args, _DATA_PLANE_COLUMNS, nodes, "")


def _delete_data_plane(args: argparse.Namespace, session: rpc.Session) -> None:
    stub = data_planes_pb2_grpc.DataPlaneServiceStub(session.channel)
    response = session.call(
        stub.DeleteDataPlane, data_planes_pb2.DeleteDataPlaneRequest(node_id=args.node_id)
    )
    print(output.to_json(response) if args.json else f"Forgot data plane {args.node_id}.")


def _rotate_master_key(args: argparse.Namespace, session: rpc.Session) -> None:
    stub = master_keys_pb2_grpc.MasterKeyServiceStub(session.channel)
    request = master_keys_pb2.RotateMasterKeyRequest(resume_only=args.resume_only)
    response = session.call(stub.RotateMasterKey, request)
    _print_resource(args, response)


def _read_secret(value: str) -> str:
    """`-` reads the secret from stdin (or a no-echo prompt) to keep it out of shell history."""
    if value != "-":
        return value
    if sys.stdin.isatty():
        return getpass.getpass("Secret value: ")
    text = sys.stdin.read()
    for newline in ("\r\n", "\n"):
        if text.endswith(newline):
            return text[: -len(newline)]
    return text


# --- printing -----------------------------------------------------------------------


def _print_resource(args: argparse.Namespace, message: Message) -> None:
    print(output.to_json(message) if args.json else output.render_detail(message))


def _print_with_token(args: argparse.Namespace, response: Any, resource: Message) -> None:
    if args.json:
        print(output.to_json(response))
        return
    print(output.render_detail(resource))
    print(f"\nToken (shown once, store it now): {response.token}")


def _print_list(
    args: argparse.Namespace,
    columns: Sequence[_Column],
    items: Sequence[Message],
    next_page_token: str,
) -> None:
    if args.json:
        print(output.to_json(items))
        if next_page_token:
            # stdout stays a plain array of resources; the token is for the next call.
            print(f"next page token: {next_page_token}", file=sys.stderr)
        return
    headers = [header for header, _ in columns]
    print(output.render_table(headers, [[cell(item) for _, cell in columns] for item in items]))
    if next_page_token:
        print(f"\nNext page: --page-token {next_page_token}")
