"""The control plane's storage: a port (`port.Store`) over typed records, and its adapters.

- `records`: every value the store takes or returns (frozen, slotted; no rows, no columns);
- `port`: the `Store` protocol, the resource kinds, and the two parts with connections of
  their own (`SnapshotSource`, the compiler's reader; `SealedPasses`, re-wraps and
  re-seals);
- `codec`: how values are kept in columns, the same for every adapter;
- `relational`: the store in SQL, written once over a `Session` (the only place with
  data SQL), with the snapshot reader and the sealed-row passes;
- `sqlite`: the embedded default (sqlite-utils, WAL): its session and schema;
- `postgres`: PostgreSQL (psycopg 3 pool) for replicas on one database: its session,
  schema (migrated under an advisory lock) and the watcher of other replicas' commits;
- `urls`: which adapter `--database-url` names.

Both adapters pass the same contract tests (`tests/integration/test_store_contract.py`,
parametrised by adapter).

How async code calls it. The port is synchronous, one transaction per method, and each
adapter brings the executor its methods run on (`Store.executor`); async code never calls
a method directly but through `port.call(store, method, …)`. For the admin API that
boundary is one place, the `rpc` wrapper, which runs a whole handler (authentication
included) there; handlers that must touch loop state are coroutines (`async_rpc`) that
await `call` for each store access. Why this and not an async port:

- the event loop never runs a query, whatever the backend: a PostgreSQL adapter (psycopg
  3's pool, used from these threads) makes its network round trips off the loop, and sizes
  its executor like its pool;
- a transaction is one method call on one thread, so none is ever held open across an
  await, and the domain rules an adapter applies inside it stay plain functions;
- SQLite keeps what it had on the loop: one writer. Its executor has a single thread and
  its connection a lock, so writes are serialised as before, never on the loop.

The snapshot reader and the sealed-row passes have connections of their own and run on
worker threads of their own (`asyncio.to_thread`), so a compile at scale or a re-wrap of
every secret never queues admin RPCs behind it.
"""
