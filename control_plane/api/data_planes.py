"""DataPlaneService: proxy sync status and data-plane credentials.

Operators see every proxy as it reported itself. Account admins see a redacted view:
whether each proxy serves the latest snapshot, under a label derived from the node id
with a per-deployment secret (stable, but not reversible by guessing host names), and
no pool, build or NACK text, which can name other tenants' key ids.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from keyway.v1 import data_planes_pb2 as pb
from keyway.v1 import data_planes_pb2_grpc

from control_plane.domain import paging
from control_plane.domain.errors import FailedPrecondition, NotFound
from control_plane.domain.fields import page_size, require_id
from control_plane.domain.tokens import TokenKind
from control_plane.snapshots.publisher import Publisher
from control_plane.snapshots.status import (
    ConnectedNodeError,
    State,
    StatusBook,
    UnknownNodeError,
    state,
)
from control_plane.store.port import DATA_PLANE_CREDENTIALS, Store, call
from control_plane.store.records import Credential, Labels, NodeStatus

from .auth import Principal
from .base import (
    Options,
    Servicer,
    async_rpc,
    new_credential,
    next_token,
    page_args,
    rpc,
    timestamp,
)

_HIDDEN_REJECTION = "rejected by this proxy; the operator can see why"

_STATES = {
    State.IN_SYNC: pb.DATA_PLANE_STATE_IN_SYNC,
    State.STALE: pb.DATA_PLANE_STATE_STALE,
    State.REJECTED: pb.DATA_PLANE_STATE_REJECTED,
    State.DISCONNECTED: pb.DATA_PLANE_STATE_DISCONNECTED,
}


def credential_message(credential: Credential) -> pb.DataPlaneCredential:
    return pb.DataPlaneCredential(
        id=credential.id,
        name=credential.fields.name,
        redacted_token=credential.redacted_token,
        create_time=timestamp(credential.create_time_us),
    )


class DataPlaneServicer(Servicer, data_planes_pb2_grpc.DataPlaneServiceServicer):
    """The status book and open streams live on the event loop: methods that touch them are
    coroutines (`async_rpc`)."""

    def __init__(
        self,
        store: Store,
        options: Options,
        status: StatusBook,
        publisher: Publisher,
        revoke: Callable[[str], None],
    ) -> None:
        super().__init__(store, options)
        self._status = status
        self._publisher = publisher
        self._revoke = revoke
        self._salt = store.label_salt()

    def _label(self, node_id: str) -> str:
        digest = hmac.new(self._salt, node_id.encode(), hashlib.sha256).hexdigest()
        return f"proxy-{digest[:12]}"

    def _redacted(self, message: pb.DataPlane) -> pb.DataPlane:
        message.node_id = self._label(message.node_id)
        message.pool = ""
        message.build_version = ""
        message.control_plane = ""
        if message.HasField("last_rejection"):
            message.last_rejection.message = _HIDDEN_REJECTION
        message.redacted = True
        return message

    def _node(self, node: NodeStatus) -> pb.DataPlane:
        latest = self._publisher.latest
        message = pb.DataPlane(
            node_id=node.node_id,
            pool=node.pool,
            build_version=node.build_version,
            state=_STATES[state(node, latest.revision if latest else None)],
            connect_time=timestamp(node.connect_time_us),
            last_seen_time=timestamp(node.last_seen_us),
            sent_version=node.sent_version,
            applied_version=node.applied.version if node.applied else 0,
            applied_hash=node.applied.sha256 if node.applied else "",
            latest_version=latest.compiled.version if latest else 0,
            control_plane=node.control_plane,
        )
        if node.rejection is not None:
            message.last_rejection.CopyFrom(
                pb.SnapshotRejection(
                    version=node.rejection.revision.version,
                    message=node.rejection.message,
                    time=timestamp(node.rejected_time_us),
                )
            )
        return message

    @async_rpc
    async def ListDataPlanes(
        self, request: pb.ListDataPlanesRequest, who: Principal
    ) -> pb.ListDataPlanesResponse:
        operator = who.kind is TokenKind.OPERATOR
        view = "operator" if operator else "redacted"
        after = paging.decode_key(request.page_token, view)
        limit = page_size(request.page_size)
        rows = [self._node(n) for n in self._status.nodes()]
        if not operator:
            rows = sorted((self._redacted(r) for r in rows), key=lambda r: r.node_id)
        rows = [r for r in rows if r.node_id > after]
        page, more = rows[:limit], len(rows) > limit
        return pb.ListDataPlanesResponse(
            data_planes=page,
            next_page_token=paging.encode_key(page[-1].node_id, view) if more else "",
        )

    @async_rpc
    async def DeleteDataPlane(
        self, request: pb.DeleteDataPlaneRequest, who: Principal
    ) -> pb.DeleteDataPlaneResponse:
        who.require_operator()
        node_id = require_id(request.node_id, "node_id")
        try:
            self._status.delete(node_id)
        except UnknownNodeError:
            raise NotFound(f"data plane '{node_id}' not found") from None
        except ConnectedNodeError:
            raise FailedPrecondition(
                f"data plane '{node_id}' is connected now; stop it (or revoke its credential) "
                "before forgetting it",
                [node_id],
                reason="DATA_PLANE_CONNECTED",
            ) from None
        return pb.DeleteDataPlaneResponse()

    @rpc
    def CreateDataPlaneCredential(
        self, request: pb.CreateDataPlaneCredentialRequest, who: Principal
    ) -> pb.CreateDataPlaneCredentialResponse:
        who.require_operator()
        fields = Labels(name=request.credential.name)
        credential, token = new_credential(
            self.store, TokenKind.DATA_PLANE, fields, field_prefix="credential."
        )
        return pb.CreateDataPlaneCredentialResponse(
            credential=credential_message(credential), token=token
        )

    @rpc
    def ListDataPlaneCredentials(
        self, request: pb.ListDataPlaneCredentialsRequest, who: Principal
    ) -> pb.ListDataPlaneCredentialsResponse:
        who.require_operator()
        page = self.store.list_credentials(
            TokenKind.DATA_PLANE,
            account_id=None,
            **page_args(request.page_size, request.page_token),
        )
        return pb.ListDataPlaneCredentialsResponse(
            credentials=[credential_message(c) for c in page.items],
            next_page_token=next_token(page),
        )

    @async_rpc
    async def DeleteDataPlaneCredential(
        self, request: pb.DeleteDataPlaneCredentialRequest, who: Principal
    ) -> pb.DeleteDataPlaneCredentialResponse:
        who.require_operator()
        credential_id = require_id(request.id)
        await call(self.store, self.store.delete, DATA_PLANE_CREDENTIALS, credential_id, None)
        self._revoke(credential_id)
        return pb.DeleteDataPlaneCredentialResponse()
