"""ProviderKeyService: write-only secrets, shown redacted, rotated in place."""

from __future__ import annotations

from keyway.v1 import provider_keys_pb2 as pb
from keyway.v1 import provider_keys_pb2_grpc

from control_plane.domain import masks
from control_plane.domain.errors import Violations
from control_plane.domain.fields import check_common, check_secret, check_text, require_id
from control_plane.secrets.secret import Secret
from control_plane.store.port import PROVIDER_KEYS
from control_plane.store.records import ProviderKey, ProviderKeyFields

from .auth import Principal
from .base import (
    Servicer,
    account_rpc,
    check_labels,
    common,
    masked,
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


def provider_key_message(key: ProviderKey) -> pb.ProviderKey:
    message = pb.ProviderKey(
        provider_id=key.provider_id,
        name=key.fields.name,
        redacted_value=key.redacted_value,
        last_used_time=timestamp(key.last_used_time_us),
        rotate_time=timestamp(key.rotate_time_us),
        last_success_time=timestamp(key.last_success_time_us),
        disabled=key.fields.disabled,
        **common(key),
    )
    # The error is history once the key served again or got a new value; the admin API
    # shows what is wrong now.
    recovered = max(key.last_success_time_us or 0, key.rotate_time_us)
    error = key.last_error
    if error is not None and error.time_us > recovered:
        message.last_error.CopyFrom(
            pb.ProviderKeyError(
                status=error.status, reason=error.reason, time=timestamp(error.time_us)
            )
        )
    return message


def _fields(key: pb.ProviderKey) -> ProviderKeyFields:
    return ProviderKeyFields(
        name=key.name, description=key.description, metadata=key.metadata, disabled=key.disabled
    )


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
        # The resource may carry the value itself, so that it alone is a create body.
        value = request.value or k.value
        if request.value and k.value:
            v.add("value", "is set twice: send it in the request or in provider_key, not both")
        else:
            check_secret(v, "value", value)
        v.raise_if_any()
        key = self.store.create_provider_key(
            account_id,
            provider_id=k.provider_id,
            fields=ProviderKeyFields(name=k.name, description=k.description, metadata=k.metadata),
            value=Secret(value),
        )
        return pb.CreateProviderKeyResponse(provider_key=provider_key_message(key))

    @account_rpc
    def GetProviderKey(
        self, request: pb.GetProviderKeyRequest, who: Principal
    ) -> pb.GetProviderKeyResponse:
        key = self.store.get(PROVIDER_KEYS, require_id(request.id), who.account())
        return pb.GetProviderKeyResponse(provider_key=provider_key_message(key))

    @account_rpc
    def ListProviderKeys(
        self, request: pb.ListProviderKeysRequest, who: Principal
    ) -> pb.ListProviderKeysResponse:
        account_id = who.account()
        args = page_args(request.page_size, request.page_token, request.provider_id)
        page = self.store.list_provider_keys(account_id, provider_id=request.provider_id, **args)
        return pb.ListProviderKeysResponse(
            provider_keys=[provider_key_message(k) for k in page.items],
            next_page_token=next_token(page, request.provider_id),
        )

    @account_rpc
    def UpdateProviderKey(
        self, request: pb.UpdateProviderKeyRequest, who: Principal
    ) -> pb.UpdateProviderKeyResponse:
        k = request.provider_key
        current = self.store.get(PROVIDER_KEYS, require_id(k.id, "provider_key.id"), who.account())
        chosen = masked(k, request.update_mask, _UPDATABLE)
        merged = masks.merge(provider_key_message(current), k, chosen)
        check_labels(merged)
        key = self.store.update(
            PROVIDER_KEYS, k.id, who.account(), _fields(merged), chosen.values(), k.etag
        )
        return pb.UpdateProviderKeyResponse(provider_key=provider_key_message(key))

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
        key = self.store.rotate_provider_key(
            account_id,
            require_id(request.id),
            value=Secret(request.value),
            name=request.name,
            etag=request.etag,
        )
        return pb.RotateProviderKeyResponse(provider_key=provider_key_message(key))
