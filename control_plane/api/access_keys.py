"""AccessKeyService: tokens shown once, stored as hashes, optionally linked."""

from __future__ import annotations

from typing import Any

from keyway.v1 import access_keys_pb2 as pb
from keyway.v1 import access_keys_pb2_grpc

from control_plane.domain.errors import Violations
from control_plane.domain.fields import check_common, require_id
from control_plane.store.store import ACCESS_KEYS

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
    "configuration_id": "configuration_id",
    "disabled": "disabled",
}


def access_key_message(row: dict[str, Any]) -> pb.AccessKey:
    return pb.AccessKey(
        name=row["name"],
        redacted_token=row["redacted_token"],
        configuration_id=row["configuration_id"] or "",
        last_used_time=timestamp(row["last_used_time"]),
        disabled=bool(row["disabled"]),
        **common(row),
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
        row, token = self.store.create_access_key(
            account_id,
            name=k.name,
            description=k.description,
            metadata=k.metadata,
            configuration_id=k.configuration_id or None,
        )
        return pb.CreateAccessKeyResponse(access_key=access_key_message(row), token=token)

    @account_rpc
    def GetAccessKey(
        self, request: pb.GetAccessKeyRequest, who: Principal
    ) -> pb.GetAccessKeyResponse:
        row = self.store.get(ACCESS_KEYS, require_id(request.id), who.account())
        return pb.GetAccessKeyResponse(access_key=access_key_message(row))

    @account_rpc
    def ListAccessKeys(
        self, request: pb.ListAccessKeysRequest, who: Principal
    ) -> pb.ListAccessKeysResponse:
        args = page_args(request.page_size, request.page_token, request.configuration_id)
        page = self.store.list_access_keys(
            who.account(), configuration_id=request.configuration_id, **args
        )
        return pb.ListAccessKeysResponse(
            access_keys=[access_key_message(r) for r in page.rows],
            next_page_token=next_token(page, request.configuration_id),
        )

    @account_rpc
    def UpdateAccessKey(
        self, request: pb.UpdateAccessKeyRequest, who: Principal
    ) -> pb.UpdateAccessKeyResponse:
        account_id = who.account()
        k = request.access_key
        current = self.store.get(ACCESS_KEYS, require_id(k.id, "access_key.id"), account_id)
        values = changes(k, request.update_mask, _UPDATABLE)
        check_update(values, current)
        if "configuration_id" in values:
            values["configuration_id"] = values["configuration_id"] or None
        row = self.store.update_access_key(account_id, k.id, values, k.etag)
        return pb.UpdateAccessKeyResponse(access_key=access_key_message(row))

    @account_rpc
    def DeleteAccessKey(
        self, request: pb.DeleteAccessKeyRequest, who: Principal
    ) -> pb.DeleteAccessKeyResponse:
        self.store.delete(ACCESS_KEYS, require_id(request.id), who.account(), request.etag)
        return pb.DeleteAccessKeyResponse()
