"""OperatorCredentialService: the operator's own tokens, rotated and revoked in place.

A leaked operator token is replaced with `RotateOperatorCredential` (same id, new
token) or revoked with `DeleteOperatorCredential` once another credential exists.
Losing every operator token is repaired locally: `keyway reset-operator-token`.
"""

from __future__ import annotations

from typing import Any

from keyway.v1 import operator_credentials_pb2 as pb
from keyway.v1 import operator_credentials_pb2_grpc

from control_plane.domain import tokens
from control_plane.domain.errors import Violations
from control_plane.domain.fields import check_common, require_id

from .auth import Principal
from .base import Servicer, next_token, page_args, rpc, timestamp


def operator_credential_message(row: dict[str, Any]) -> pb.OperatorCredential:
    return pb.OperatorCredential(
        id=row["id"],
        name=row["name"],
        redacted_token=row["redacted_token"],
        create_time=timestamp(row["create_time"]),
        update_time=timestamp(row["update_time"]),
    )


class OperatorCredentialServicer(
    Servicer, operator_credentials_pb2_grpc.OperatorCredentialServiceServicer
):
    @rpc
    def CreateOperatorCredential(
        self, request: pb.CreateOperatorCredentialRequest, who: Principal
    ) -> pb.CreateOperatorCredentialResponse:
        who.require_operator()
        v = Violations()
        check_common(v, "credential.", name=request.credential.name, description="", metadata="")
        v.raise_if_any()
        row, token = self.store.create_credential(
            tokens.TokenKind.OPERATOR, account_id=None, name=request.credential.name
        )
        return pb.CreateOperatorCredentialResponse(
            credential=operator_credential_message(row), token=token
        )

    @rpc
    def ListOperatorCredentials(
        self, request: pb.ListOperatorCredentialsRequest, who: Principal
    ) -> pb.ListOperatorCredentialsResponse:
        who.require_operator()
        page = self.store.list_credentials(
            tokens.TokenKind.OPERATOR, **page_args(request.page_size, request.page_token)
        )
        return pb.ListOperatorCredentialsResponse(
            credentials=[operator_credential_message(r) for r in page.rows],
            next_page_token=next_token(page),
        )

    @rpc
    def RotateOperatorCredential(
        self, request: pb.RotateOperatorCredentialRequest, who: Principal
    ) -> pb.RotateOperatorCredentialResponse:
        who.require_operator()
        row, token = self.store.rotate_credential(tokens.TokenKind.OPERATOR, require_id(request.id))
        return pb.RotateOperatorCredentialResponse(
            credential=operator_credential_message(row), token=token
        )

    @rpc
    def DeleteOperatorCredential(
        self, request: pb.DeleteOperatorCredentialRequest, who: Principal
    ) -> pb.DeleteOperatorCredentialResponse:
        who.require_operator()
        self.store.delete_operator_credential(require_id(request.id))
        return pb.DeleteOperatorCredentialResponse()
