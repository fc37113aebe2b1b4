"""Passes over every sealed provider key that run beside the admin API.

Re-wrapping data keys under a new master key and re-sealing rows from before their owner
was bound into the associated data both touch every row, which takes seconds at scale.
They run on a worker thread with a connection of their own, in small batches that each
commit alone (an interrupted pass resumes where it stopped), and each update only lands
if the row is still what was read (a rotation in between wins). Plaintexts do not change,
so the store revision, and with it the snapshot, does not move.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from control_plane.secrets.errors import SealError
from control_plane.secrets.sealing import SealedSecret, Sealer
from control_plane.store.codec import AAD_VERSION, key_aad
from control_plane.store.records import PassResult

from .session import Session

log = logging.getLogger("keyway.control_plane.store")

_Row = tuple[int, str, str, str, str, bytes, bytes, int, int]
_Update = tuple[str, list[object]]
_COLUMNS = (
    "seq, id, account_id, provider_id, kek_id, wrapped_key, ciphertext, secret_version, aad_version"
)


class SealedRows:
    """`SealedPasses` over a session per pass (`connect()`), on the caller's worker thread."""

    def __init__(
        self, connect: Callable[[], AbstractContextManager[Session]], sealer: Sealer
    ) -> None:
        self._connect = connect
        self._sealer = sealer
        # One pass at a time: a re-seal racing a re-wrap could leave a row under a key the
        # re-wrap believes it has already moved past.
        self._lock = threading.Lock()
        self._closed = threading.Event()

    def close(self) -> None:
        """Stops a running pass after its current batch (the next run resumes)."""
        self._closed.set()

    def count_under(self, kek_id: str) -> int:
        with self._connect() as conn:
            row = conn.execute("SELECT count(*) FROM provider_keys WHERE kek_id = ?", [kek_id])
            return int(row.fetchone()[0])

    def legacy_rows(self) -> int:
        with self._connect() as conn:
            row = conn.execute("SELECT count(*) FROM provider_keys WHERE aad_version = 1")
            return int(row.fetchone()[0])

    def rewrap(self, batch: int = 200) -> PassResult:
        """Re-wraps every data key not under the current master key."""
        current = self._sealer.current_kek_id()

        def prepare(row: _Row) -> _Update:
            seq, _, _, _, kek_id, wrapped, ciphertext, _, _ = row
            sealed = self._sealer.rewrap(SealedSecret(kek_id, wrapped, ciphertext), _aad(row))
            return (
                "UPDATE provider_keys SET kek_id = ?, wrapped_key = ? "
                "WHERE seq = ? AND kek_id = ? AND wrapped_key = ?",
                [sealed.kek_id, sealed.wrapped_key, seq, kek_id, wrapped],
            )

        return self._pass("kek_id != ?", [current], prepare, batch)

    def reseal_legacy(self, batch: int = 200) -> PassResult:
        """Re-seals rows whose associated data does not bind their owner yet."""

        def prepare(row: _Row) -> _Update:
            seq, row_id, account_id, provider_id, kek_id, wrapped, ciphertext, version, _ = row
            value = self._sealer.open(SealedSecret(kek_id, wrapped, ciphertext), _aad(row))
            new_aad = key_aad(account_id, provider_id, row_id, version, AAD_VERSION)
            sealed = self._sealer.seal(value, new_aad)
            return (
                "UPDATE provider_keys SET kek_id = ?, wrapped_key = ?, ciphertext = ?, "
                "aad_version = ? WHERE seq = ? AND aad_version = 1 AND ciphertext = ?",
                [
                    sealed.kek_id,
                    sealed.wrapped_key,
                    sealed.ciphertext,
                    AAD_VERSION,
                    seq,
                    ciphertext,
                ],
            )

        return self._pass("aad_version = 1", [], prepare, batch)

    def _pass(
        self,
        where: str,
        params: list[object],
        prepare: Callable[[_Row], _Update],
        batch: int,
    ) -> PassResult:
        done = 0
        unreadable: list[str] = []
        after = 0
        with self._lock, self._connect() as conn:
            while not self._closed.is_set():
                rows: list[_Row] = conn.execute(
                    f"SELECT {_COLUMNS} FROM provider_keys WHERE {where} AND seq > ? "  # noqa: S608
                    "ORDER BY seq LIMIT ?",
                    [*params, after, batch],
                ).fetchall()
                if not rows:
                    break
                after = rows[-1][0]
                updates = []
                for row in rows:
                    # The crypto happens before the transaction, which then holds the
                    # write lock only for the updates themselves.
                    try:
                        updates.append(prepare(row))
                    except SealError:
                        unreadable.append(row[1])
                with conn.atomic():
                    done += sum(conn.execute(sql, args).rowcount for sql, args in updates)
        if unreadable:
            log.error(
                "%d provider key(s) could not be opened and were left as they are: %s",
                len(unreadable),
                ", ".join(unreadable),
            )
        return PassResult(done, tuple(unreadable))


def _aad(row: _Row) -> bytes:
    _, row_id, account_id, provider_id, _, _, _, version, aad_version = row
    return key_aad(account_id, provider_id, row_id, version, aad_version)
