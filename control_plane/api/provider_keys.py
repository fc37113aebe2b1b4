"""ProviderKeyService: write-only secrets, shown redacted, rotated in place."""

from __future__ import annotations

from typing import Any

from keyway.v1 import provider_keys_pb2 as pb
from keyway.v1 import provider_keys_pb2_grpc

from control_plane.domain.errors import Violations
from control_plane.domain.fields import check_common, check_secret, check_text, require_id
from control_plane.secrets.secret import Secret
from control_plane.store.store import PROVIDER_KEYS

from .auth import Principal
from .base import (
    Servicer,
    account_rpc,
    changes,
    check_update,
    common,
    next_token,
    page_args,
    timestamp,
)

_UPDATABLE = {
    "name": "name",
    "description": "description",
    "metadata": "metadata",
    "disabled": "disabled",
}


def provider_key_message(row: dict[str, Any]) -> pb.ProviderKey:
    message = pb.ProviderKey(
        provider_id=row["provider_id"],
        name=row["name"],
        redacted_value=row["redacted_value"],
        last_used_time=timestamp(row["last_used_time"]),
        rotate_time=timestamp(row["rotate_time"]),
        last_success_time=timestamp(row["last_success_time"]),
        disabled=bool(row["disabled"]),
        **common(row),
    )
    # The error is history once the key served again or got a new value; the admin API
    # shows what is wrong now.
    recovered = max(row["last_success_time"] or 0, row["rotate_time"])
    if row["last_error_time"] is not None and row["last_error_time"] > recovered:
        message.last_error.CopyFrom(
            pb.ProviderKeyError(
                status=row["last_error_status"] or 0,
                reason=row["last_error_reason"] or "",
                time=timestamp(row["last_error_time"]),
            )
        )
    return message


class ProviderKeyServicer(Servicer, provider_keys_pb2_grpc.ProviderKeyServiceServicer):
    @account_rpc
    def CreateProviderKey(
        self, request: pb.CreateProviderKeyRequest, who: Principal
    ) -> pb.CreateProviderKeyResponse:
        account_id = who.account()
        k = request.provider_key
        v = Violations()
        check_text(v, "provider_id", k.provider_id, limit=64, required=True)
        check_common(v, "", name=k.name, description=k.description, metadata=k.metadata)
        check_secret(v, "value", request.value)
        v.raise_if_any()
        row = self.store.create_provider_key(
            account_id,
            provider_id=k.provider_id,
            name=k.name,
            description=k.description,
            metadata=k.metadata,
            value=Secret(request.value),
        )
        return pb.CreateProviderKeyResponse(provider_key=provider_key_message(row))

    @account_rpc
    def GetProviderKey(
        self, request: pb.GetProviderKeyRequest, who: Principal
    ) -> pb.GetProviderKeyResponse:
        row = self.store.get(PROVIDER_KEYS, require_id(request.id), who.account())
        return pb.GetProviderKeyResponse(provider_key=provider_key_message(row))

    @account_rpc
    def ListProviderKeys(
        self, request: pb.ListProviderKeysRequest, who: Principal
    ) -> pb.ListProviderKeysResponse:
        account_id = who.account()
        args = page_args(request.page_size, request.page_token, request.provider_id)
        page = self.store.list_provider_keys(account_id, provider_id=request.provider_id, **args)
        return pb.ListProviderKeysResponse(
            provider_keys=[provider_key_message(r) for r in page.rows],
            next_page_token=next_token(page, request.provider_id),
        )

    @account_rpc
    def UpdateProviderKey(
        self, request: pb.UpdateProviderKeyRequest, who: Principal
    ) -> pb.UpdateProviderKeyResponse:
        k = request.provider_key
        current = self.store.get(PROVIDER_KEYS, require_id(k.id, "provider_key.id"), who.account())
        values = changes(k, request.update_mask, _UPDATABLE)
        check_update(values, current)
        row = self.store.update(PROVIDER_KEYS, k.id, who.account(), values, k.etag)
        return pb.UpdateProviderKeyResponse(provider_key=provider_key_message(row))

    @account_rpc
    def DeleteProviderKey(
        self, request: pb.DeleteProviderKeyRequest, who: Principal
    ) -> pb.DeleteProviderKeyResponse:
        self.store.delete(PROVIDER_KEYS, require_id(request.id), who.account(), request.etag)
        return pb.DeleteProviderKeyResponse()

    @account_rpc
    def RotateProviderKey(
        self, request: pb.RotateProviderKeyRequest, who: Principal
    ) -> pb.RotateProviderKeyResponse:
        account_id = who.account()
        v = Violations()
        check_secret(v, "value", request.value)
        check_text(v, "name", request.name, limit=255)
        if request.name and not request.name.strip():
            # Create and Update refuse a blank name; empty (not blank) keeps the current one.
            v.add("name", "must not be blank; leave it empty to keep the current name")
        v.raise_if_any()
        row = self.store.rotate_provider_key(
            account_id,
            require_id(request.id),
            value=Secret(request.value),
            name=request.name,
            etag=request.etag,
        )
        return pb.RotateProviderKeyResponse(provider_key=provider_key_message(row))
