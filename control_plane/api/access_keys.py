"""AccessKeyService: tokens shown once, stored as hashes, optionally linked."""

from __future__ import annotations

from keyway.v1 import access_keys_pb2 as pb
from keyway.v1 import access_keys_pb2_grpc

from control_plane.domain import masks, tokens
from control_plane.domain.errors import Violations
from control_plane.domain.fields import check_common, require_id
from control_plane.store.port import ACCESS_KEYS
from control_plane.store.records import AccessKey, AccessKeyFields

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
    "configuration_id": "configuration_id",
    "disabled": "disabled",
}


def access_key_message(key: AccessKey) -> pb.AccessKey:
    return pb.AccessKey(
        name=key.fields.name,
        redacted_token=key.redacted_token,
        configuration_id=key.fields.configuration_id or "",
        last_used_time=timestamp(key.last_used_time_us),
        disabled=key.fields.disabled,
        **common(key),
    )


class AccessKeyServicer(Servicer, access_keys_pb2_grpc.AccessKeyServiceServicer):
    @account_rpc
    def CreateAccessKey(
        self, request: pb.CreateAccessKeyRequest, who: Principal
    ) -> pb.CreateAccessKeyResponse:
        account_id = who.account()
        k = request.access_key
        v = Violations()
        check_common(v, "", name=k.name, description=k.description, metadata=k.metadata)
        v.raise_if_any()
        fields = AccessKeyFields(
            name=k.name,
            description=k.description,
            metadata=k.metadata,
            configuration_id=k.configuration_id or None,
        )
        token = tokens.mint(tokens.TokenKind.ACCESS)
        key = self.store.create_access_key(account_id, fields=fields, token=token)
        return pb.CreateAccessKeyResponse(access_key=access_key_message(key), token=token)

    @account_rpc
    def GetAccessKey(
        self, request: pb.GetAccessKeyRequest, who: Principal
    ) -> pb.GetAccessKeyResponse:
        key = self.store.get(ACCESS_KEYS, require_id(request.id), who.account())
        return pb.GetAccessKeyResponse(access_key=access_key_message(key))

    @account_rpc
    def ListAccessKeys(
        self, request: pb.ListAccessKeysRequest, who: Principal
    ) -> pb.ListAccessKeysResponse:
        args = page_args(request.page_size, request.page_token, request.configuration_id)
        page = self.store.list_access_keys(
            who.account(), configuration_id=request.configuration_id, **args
        )
        return pb.ListAccessKeysResponse(
            access_keys=[access_key_message(k) for k in page.items],
            next_page_token=next_token(page, request.configuration_id),
        )

    @account_rpc
    def UpdateAccessKey(
        self, request: pb.UpdateAccessKeyRequest, who: Principal
    ) -> pb.UpdateAccessKeyResponse:
        account_id = who.account()
        k = request.access_key
        current = self.store.get(ACCESS_KEYS, require_id(k.id, "access_key.id"), account_id)
        chosen = masked(k, request.update_mask, _UPDATABLE)
        merged = masks.merge(access_key_message(current), k, chosen)
        check_labels(merged)
        fields = AccessKeyFields(
            name=merged.name,
            description=merged.description,
            metadata=merged.metadata,
            configuration_id=merged.configuration_id or None,
            disabled=merged.disabled,
        )
        key = self.store.update(ACCESS_KEYS, k.id, account_id, fields, chosen.values(), k.etag)
        return pb.UpdateAccessKeyResponse(access_key=access_key_message(key))

    @account_rpc
    def DeleteAccessKey(
        self, request: pb.DeleteAccessKeyRequest, who: Principal
    ) -> pb.DeleteAccessKeyResponse:
        self.store.delete(ACCESS_KEYS, require_id(request.id), who.account(), request.etag)
        return pb.DeleteAccessKeyResponse()
