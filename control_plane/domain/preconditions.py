"""What must hold before a write may land: etags, references, the last operator. Pure.

A store gathers the facts inside its write transaction (the current etag, which
configurations exist, what an account still holds) and asks these rules; each raises the
error the caller sees, naming what blocks the write. So every store backend refuses the
same writes with the same words.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence

from keyway.v1.access_key_configurations_pb2 import AccessKeyConfiguration

from .configuration import referenced_keys, referenced_providers
from .errors import Aborted, AlreadyExists, FailedPrecondition, InvalidArgument

_SHOWN_LINKS = 20


def check_etag(label: str, resource_id: str, current: str, given: str) -> None:
    """An empty etag means "whatever is there"; any other must be the current one."""
    if given and given != current:
        raise Aborted(
            f"{label} '{resource_id}' was changed since etag '{given}' "
            f"(current etag '{current}'); read it again and retry"
        )


def check_account_empty(account_id: str, held: Mapping[str, int], *, force: bool) -> None:
    """`held`: resource kind (plural, e.g. "provider keys") -> how many the account has."""
    present = {kind: n for kind, n in held.items() if n}
    if present and not force:
        summary = ", ".join(f"{n} {kind}" for kind, n in present.items())
        raise FailedPrecondition(
            f"account '{account_id}' still holds {summary}; delete them or pass force",
            [account_id],
            reason="ACCOUNT_NOT_EMPTY",
        )


def check_not_last_operator(credential_id: str, operators: int) -> None:
    if operators == 1:
        raise FailedPrecondition(
            f"operator credential '{credential_id}' is the last one: nobody could "
            "administer the gateway without it; rotate it instead, or create another "
            "one first",
            [credential_id],
            reason="LAST_OPERATOR_CREDENTIAL",
        )


def check_key_unused(
    key_id: str, configurations: Iterable[tuple[str, AccessKeyConfiguration]]
) -> None:
    """A provider key named by a router cannot go: requests routed to it would fail."""
    users = [c for c, config in configurations if key_id in referenced_keys(config.router)]
    if users:
        raise FailedPrecondition(
            f"provider key '{key_id}' is referenced by the router of "
            f"configuration(s) {', '.join(users)}; remove it from them first",
            users,
            reason="PROVIDER_KEY_IN_USE",
        )


def check_configuration_unlinked(configuration_id: str, linked: Sequence[str]) -> None:
    """`linked`: the ids of the access keys linked to the configuration, in order."""
    if linked:
        shown = ", ".join(linked[:_SHOWN_LINKS]) + (" …" if len(linked) > _SHOWN_LINKS else "")
        raise FailedPrecondition(
            f"configuration '{configuration_id}' is linked to {len(linked)} access key(s): "
            f"{shown}; link them elsewhere first",
            linked,
            reason="CONFIGURATION_IN_USE",
        )


def check_provider_unused(
    provider_id: str,
    key_ids: Sequence[str],
    configurations: Iterable[tuple[str, AccessKeyConfiguration]],
) -> None:
    """A custom provider stays while a provider key is for it or a configuration names it."""
    configs = [c for c, config in configurations if provider_id in referenced_providers(config)]
    users = [
        f"{what} {', '.join(ids)}"
        for what, ids in (("provider key(s)", key_ids), ("configuration(s)", configs))
        if ids
    ]
    if users:
        raise FailedPrecondition(
            f"custom provider '{provider_id}' is used by " + "; ".join(users),
            [*key_ids, *configs],
            reason="PROVIDER_IN_USE",
        )


def check_provider_id_free(provider_id: str, holder: str | None) -> None:
    """`holder`: the custom provider of the account that already has this id, if any."""
    if holder is not None:
        raise AlreadyExists(
            f"custom provider '{provider_id}' already exists as {holder}",
            reason="PROVIDER_ID_IN_USE",
        )


def check_provider_known(provider_id: str, known: Collection[str], *, hint: bool) -> None:
    """`hint`: point at the catalog (when creating; a list filter just says unknown)."""
    if provider_id not in known:
        more = "; see `keyway admin providers list`" if hint else ""
        raise InvalidArgument.field("provider_id", f"unknown provider '{provider_id}'{more}")


def check_configuration_exists(configuration_id: str, exists: bool) -> None:
    """An access key may only be linked to a configuration of its own account."""
    if not exists:
        raise InvalidArgument.field(
            "configuration_id", f"no configuration '{configuration_id}' in this account"
        )
