"""MasterKeyService: rotate the key-encryption key and re-wrap data keys."""

from __future__ import annotations

from keyway.v1 import master_keys_pb2 as pb
from keyway.v1 import master_keys_pb2_grpc

from control_plane.domain.errors import FailedPrecondition
from control_plane.secrets.keyring import FileKeyProvider
from control_plane.secrets.sealing import Sealer
from control_plane.store.store import Store

from .auth import Principal
from .base import Options, Servicer, rpc


class MasterKeyServicer(Servicer, master_keys_pb2_grpc.MasterKeyServiceServicer):
    def __init__(self, store: Store, options: Options, sealer: Sealer) -> None:
        super().__init__(store, options)
        self._sealer = sealer

    @rpc
    def RotateMasterKey(
        self, request: pb.RotateMasterKeyRequest, who: Principal
    ) -> pb.RotateMasterKeyResponse:
        who.require_operator()
        if not request.resume_only and self._sealer.provider.create() is None:
            raise FailedPrecondition(
                "the key provider cannot create keys (KEYWAY_MASTER_KEYS is set): put a new "
                "key first in KEYWAY_MASTER_KEYS, restart, then call with resume_only",
                reason="KEY_PROVIDER_READ_ONLY",
            )
        rewrapped = self.store.rewrap_secrets()
        provider = self._sealer.provider
        retired = []
        if isinstance(provider, FileKeyProvider):
            # Only after every data key moved: until then the old KEK is still needed.
            for kek_id in provider.ids()[1:]:
                provider.retire(kek_id)
                retired.append(kek_id)
        return pb.RotateMasterKeyResponse(
            key_id=self._sealer.current_kek_id(), rewrapped=rewrapped, retired_key_ids=retired
        )
