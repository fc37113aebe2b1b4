"""The control plane's storage: a port (`port.Store`) over typed records, and its adapters.

- `records`: every value the store takes or returns (frozen, slotted; no rows, no columns);
- `port`: the `Store` protocol, the resource kinds, and the snapshot reader and sealed-row
  passes it carries (`SnapshotSource`, `SealedPasses`);
- `codec`: how values are kept in columns, the same for every adapter;
- `sqlite`: the embedded default (sqlite-utils, WAL), the only place with SQL.

A second database is one more adapter package beside `sqlite` that passes the same
contract tests (`tests/integration/test_store_contract.py`).
"""
