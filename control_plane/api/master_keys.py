"""MasterKeyService: rotate the key-encryption key and re-wrap data keys.

The re-wrap touches every sealed secret, so it runs on a worker thread (the store's
`SealedPasses`): admin RPCs, health checks and snapshot streams carry on meanwhile.
"""

from __future__ import annotations

import asyncio

from keyway.v1 import master_keys_pb2 as pb
from keyway.v1 import master_keys_pb2_grpc

from control_plane.domain import master_keys
from control_plane.domain.errors import FailedPrecondition
from control_plane.key_checks import record_current_key
from control_plane.secrets.keyring import FileKeyProvider
from control_plane.secrets.sealing import Sealer
from control_plane.store.port import Store, call

from .auth import Principal
from .base import Options, Servicer, async_rpc


class MasterKeyServicer(Servicer, master_keys_pb2_grpc.MasterKeyServiceServicer):
    def __init__(self, store: Store, options: Options, sealer: Sealer) -> None:
        super().__init__(store, options)
        self._sealer = sealer
        self._rows = store.sealed
        self._rotating = asyncio.Lock()

    @async_rpc
    async def RotateMasterKey(
        self, request: pb.RotateMasterKeyRequest, who: Principal
    ) -> pb.RotateMasterKeyResponse:
        who.require_operator()
        async with self._rotating:
            if not request.resume_only and self._sealer.provider.create() is None:
                raise FailedPrecondition(
                    "the key provider cannot create keys (KEYWAY_MASTER_KEYS is set): put a "
                    "new key first in KEYWAY_MASTER_KEYS, restart, then call with resume_only",
                    reason="KEY_PROVIDER_READ_ONLY",
                )
            # Before anything is sealed under it: a replica starting meanwhile must know
            # the new key as this deployment's.
            await call(self.store, record_current_key, self.store, self._sealer)
            rewrapped, unreadable = await asyncio.to_thread(self._rewrap_everything)
            retired = await self._retire()
        return pb.RotateMasterKeyResponse(
            key_id=self._sealer.current_kek_id(),
            rewrapped=rewrapped,
            retired_key_ids=retired,
            unreadable_key_ids=sorted(unreadable),
        )

    def _rewrap_everything(self) -> tuple[int, set[str]]:
        rewrapped = 0
        unreadable: set[str] = set()
        # One replica at a time re-wraps a shared database.
        with self.store.exclusive("master-key-rewrap") as mine:
            if not mine:
                raise FailedPrecondition(
                    "another control-plane replica is re-wrapping the data keys: call "
                    "again with resume_only once it is done",
                    reason="REWRAP_RUNNING",
                )
            while True:
                # Writes that sealed under the old key just before the new one became
                # current may land behind the pass: repeat until a pass finds nothing.
                result = self._rows.rewrap()
                rewrapped += result.done
                unreadable.update(result.unreadable)
                if result.done == 0:
                    return rewrapped, unreadable

    async def _retire(self) -> list[str]:
        provider = self._sealer.provider
        if not isinstance(provider, FileKeyProvider):
            return []  # the environment is not ours to edit
        key_ids = provider.ids()
        wrapped = {k: await asyncio.to_thread(self._rows.count_under, k) for k in key_ids[1:]}
        retired = master_keys.retirable(key_ids, wrapped)
        for kek_id in retired:
            provider.retire(kek_id)
        return retired
