"""How much room an account's resources take: counts for quotas, bytes for the budget.

The byte figure estimates the account's share of the routing snapshot from the
stored rows, in SQL, inside the write transaction. It is an upper bound of the
compiled size (stored JSON and ciphertexts are at least as long as their protobuf
encoding, and each row adds a margin for the field framing), so a budget checked
against it holds for the snapshot itself. Each account row keeps its current
figure in `snapshot_bytes`, so the total is a sum over accounts, not over every row.
"""

from __future__ import annotations

from sqlite_utils import Database

# `:account` is the account id. length() of TEXT counts characters: ids and provider
# ids are ASCII, stored JSON is ASCII-escaped, URLs are measured as bytes.
ACCOUNT_BYTES_SQL = """
    64 + length(CAST(:account AS BLOB))
    + coalesce((SELECT sum(length(id) + length(provider_id) + length(ciphertext) + 8)
                FROM provider_keys WHERE account_id = :account), 0)
    + coalesce((SELECT sum(length(id) + length(token_hash)
                           + length(coalesce(configuration_id, '')) + 12)
                FROM access_keys WHERE account_id = :account), 0)
    + coalesce((SELECT sum(length(id) + length(coalesce(access_json, ''))
                           + length(router_json) + length(coalesce(limits_json, '')) + 16)
                FROM configurations WHERE account_id = :account), 0)
    + coalesce((SELECT sum(length(provider_id) + length(CAST(base_url AS BLOB))
                           + length(formats_json) + length(models_json) + 32)
                FROM custom_providers WHERE account_id = :account), 0)
"""

# The tables whose rows a quota counts, by quota name.
COUNTED = {
    "provider_keys": ("provider_keys", ""),
    "access_keys": ("access_keys", ""),
    "configurations": ("configurations", ""),
    "custom_providers": ("custom_providers", ""),
    "admin_api_keys": ("credentials", " AND kind = 'admin'"),
}


def count(db: Database, quota: str, account_id: str) -> int:
    table, extra = COUNTED[quota]
    row = db.execute(
        f"SELECT count(*) FROM {table} WHERE account_id = ?{extra}",  # noqa: S608 - constants
        [account_id],
    ).fetchone()
    return int(row[0])


def account_bytes(db: Database, account_id: str) -> tuple[int, int]:
    """(recorded figure, figure from the rows as they are now) for one account."""
    row = db.execute(
        f"SELECT snapshot_bytes, {ACCOUNT_BYTES_SQL} FROM accounts WHERE id = :account",  # noqa: S608
        {"account": account_id},
    ).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def total_bytes(db: Database) -> int:
    return int(db.execute("SELECT coalesce(sum(snapshot_bytes), 0) FROM accounts").fetchone()[0])
