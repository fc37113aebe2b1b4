"""DataPlaneService: proxy sync status and data-plane credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keyway.v1 import data_planes_pb2 as pb
from keyway.v1 import data_planes_pb2_grpc

from control_plane.domain import tokens
from control_plane.domain.errors import Violations
from control_plane.domain.fields import check_common, require_id
from control_plane.snapshots.publisher import Publisher
from control_plane.snapshots.status import NodeStatus, State, StatusBook
from control_plane.store.store import DATA_PLANE_CREDENTIALS, Store

from .auth import Principal
from .base import Options, Servicer, next_token, page_args, rpc, timestamp

_STATES = {
    State.IN_SYNC: pb.DATA_PLANE_STATE_IN_SYNC,
    State.STALE: pb.DATA_PLANE_STATE_STALE,
    State.REJECTED: pb.DATA_PLANE_STATE_REJECTED,
    State.DISCONNECTED: pb.DATA_PLANE_STATE_DISCONNECTED,
}


def credential_message(row: dict[str, Any]) -> pb.DataPlaneCredential:
    return pb.DataPlaneCredential(
        id=row["id"],
        name=row["name"],
        redacted_token=row["redacted_token"],
        create_time=timestamp(row["create_time"]),
    )


class DataPlaneServicer(Servicer, data_planes_pb2_grpc.DataPlaneServiceServicer):
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

    def _node(self, node: NodeStatus) -> pb.DataPlane:
        latest = self._publisher.latest
        message = pb.DataPlane(
            node_id=node.node_id,
            pool=node.pool,
            build_version=node.build_version,
            state=_STATES[node.state(latest.revision if latest else None)],
            connect_time=timestamp(node.connect_time_us),
            last_seen_time=timestamp(node.last_seen_us),
            sent_version=node.sent_version,
            applied_version=node.applied.version if node.applied else 0,
            applied_hash=node.applied.sha256 if node.applied else "",
            latest_version=latest.compiled.version if latest else 0,
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

    @rpc
    def ListDataPlanes(
        self, request: pb.ListDataPlanesRequest, who: Principal
    ) -> pb.ListDataPlanesResponse:
        # Any admin may read it: it holds versions and node names, no tenant data.
        return pb.ListDataPlanesResponse(data_planes=[self._node(n) for n in self._status.nodes()])

    @rpc
    def CreateDataPlaneCredential(
        self, request: pb.CreateDataPlaneCredentialRequest, who: Principal
    ) -> pb.CreateDataPlaneCredentialResponse:
        who.require_operator()
        v = Violations()
        check_common(v, "credential.", name=request.credential.name, description="", metadata="")
        v.raise_if_any()
        row, token = self.store.create_credential(
            tokens.TokenKind.DATA_PLANE, account_id=None, name=request.credential.name
        )
        return pb.CreateDataPlaneCredentialResponse(credential=credential_message(row), token=token)

    @rpc
    def ListDataPlaneCredentials(
        self, request: pb.ListDataPlaneCredentialsRequest, who: Principal
    ) -> pb.ListDataPlaneCredentialsResponse:
        who.require_operator()
        page = self.store.list_data_plane_credentials(
            **page_args(request.page_size, request.page_token)
        )
        return pb.ListDataPlaneCredentialsResponse(
            credentials=[credential_message(r) for r in page.rows],
            next_page_token=next_token(page),
        )

    @rpc
    def DeleteDataPlaneCredential(
        self, request: pb.DeleteDataPlaneCredentialRequest, who: Principal
    ) -> pb.DeleteDataPlaneCredentialResponse:
        who.require_operator()
        credential_id = require_id(request.id)
        self.store.delete(DATA_PLANE_CREDENTIALS, credential_id, None)
        self._revoke(credential_id)
        return pb.DeleteDataPlaneCredentialResponse()
