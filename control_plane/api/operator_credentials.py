"""OperatorCredentialService: the operator's own tokens, rotated and revoked in place.

A leaked operator token is replaced with `RotateOperatorCredential` (same id, new
token) or revoked with `DeleteOperatorCredential` once another credential exists.
Losing every operator token is repaired locally: `keyway reset-operator-token`.
"""

from __future__ import annotations

from keyway.v1 import operator_credentials_pb2 as pb
from keyway.v1 import operator_credentials_pb2_grpc

from control_plane.domain import tokens
from control_plane.domain.fields import require_id
from control_plane.domain.tokens import TokenKind
from control_plane.store.port import OPERATOR_CREDENTIALS
from control_plane.store.records import Credential, Labels

from .auth import Principal
from .base import Servicer, new_credential, next_token, page_args, rpc, timestamp


def operator_credential_message(credential: Credential) -> pb.OperatorCredential:
    return pb.OperatorCredential(
        id=credential.id,
        name=credential.fields.name,
        redacted_token=credential.redacted_token,
        create_time=timestamp(credential.create_time_us),
        update_time=timestamp(credential.update_time_us),
    )


class OperatorCredentialServicer(
    Servicer, operator_credentials_pb2_grpc.OperatorCredentialServiceServicer
):
    @rpc
    def CreateOperatorCredential(
        self, request: pb.CreateOperatorCredentialRequest, who: Principal
    ) -> pb.CreateOperatorCredentialResponse:
        who.require_operator()
        fields = Labels(name=request.credential.name)
        credential, token = new_credential(
            self.store, TokenKind.OPERATOR, fields, field_prefix="credential."
        )
        return pb.CreateOperatorCredentialResponse(
            credential=operator_credential_message(credential), token=token
        )

    @rpc
    def ListOperatorCredentials(
        self, request: pb.ListOperatorCredentialsRequest, who: Principal
    ) -> pb.ListOperatorCredentialsResponse:
        who.require_operator()
        page = self.store.list_credentials(
            TokenKind.OPERATOR, account_id=None, **page_args(request.page_size, request.page_token)
        )
        return pb.ListOperatorCredentialsResponse(
            credentials=[operator_credential_message(c) for c in page.items],
            next_page_token=next_token(page),
        )

    @rpc
    def RotateOperatorCredential(
        self, request: pb.RotateOperatorCredentialRequest, who: Principal
    ) -> pb.RotateOperatorCredentialResponse:
        who.require_operator()
        credential_id = require_id(request.id)
        token = tokens.mint(TokenKind.OPERATOR)
        credential = self.store.rotate_credential(TokenKind.OPERATOR, credential_id, token)
        return pb.RotateOperatorCredentialResponse(
            credential=operator_credential_message(credential), token=token
        )

    @rpc
    def DeleteOperatorCredential(
        self, request: pb.DeleteOperatorCredentialRequest, who: Principal
    ) -> pb.DeleteOperatorCredentialResponse:
        who.require_operator()
        self.store.delete(OPERATOR_CREDENTIALS, require_id(request.id), None)
        return pb.DeleteOperatorCredentialResponse()
