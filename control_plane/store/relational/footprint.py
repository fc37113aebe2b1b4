"""How much room an account's resources take: counts for quotas, bytes for the budget.

The byte figure estimates the account's share of the routing snapshot from the
stored rows, in SQL, inside the write transaction. It is an upper bound of the
compiled size (stored JSON and ciphertexts are at least as long as their protobuf
encoding, and each row adds a margin for the field framing), so a budget checked
against it holds for the snapshot itself. Each account row keeps its current
figure in `snapshot_bytes`, so the total is a sum over accounts, not over every row.
"""

from __future__ import annotations

from .session import Dialect, Session

# `:account` is the account, `{bytes_…}` the dialect's byte lengths. length() of TEXT
# counts characters: ids and provider ids are ASCII, stored JSON is ASCII-escaped, URLs
# are measured as bytes.
_ACCOUNT_BYTES = """
    64 + {bytes_account}
    + coalesce((SELECT sum(length(id) + length(provider_id) + length(ciphertext) + 8)
                FROM provider_keys WHERE account_id = :account), 0)
    + coalesce((SELECT sum(length(id) + length(token_hash)
                           + length(coalesce(configuration_id, '')) + 12)
                FROM access_keys WHERE account_id = :account), 0)
    + coalesce((SELECT sum(length(id) + length(coalesce(access_json, ''))
                           + length(router_json) + length(coalesce(limits_json, '')) + 16)
                FROM configurations WHERE account_id = :account), 0)
    + coalesce((SELECT sum(length(provider_id) + {bytes_base_url}
                           + length(formats_json) + length(models_json) + 32)
                FROM custom_providers WHERE account_id = :account), 0)
"""


def account_bytes_sql(dialect: Dialect, account: str) -> str:
    """The estimate for the account `account` (an SQL expression: `?` or a column)."""
    return _ACCOUNT_BYTES.format(
        bytes_account=dialect.byte_length.format(account),
        bytes_base_url=dialect.byte_length.format("base_url"),
    ).replace(":account", account)


# The tables whose rows a quota counts, by quota name.
COUNTED = {
    "provider_keys": ("provider_keys", ""),
    "access_keys": ("access_keys", ""),
    "configurations": ("configurations", ""),
    "custom_providers": ("custom_providers", ""),
    "admin_api_keys": ("credentials", " AND kind = 'admin'"),
}


def count(db: Session, quota: str, account_id: str) -> int:
    table, extra = COUNTED[quota]
    row = db.execute(
        f"SELECT count(*) FROM {table} WHERE account_id = ?{extra}",  # noqa: S608 - constants
        [account_id],
    ).fetchone()
    return int(row[0])


def account_bytes(db: Session, account_id: str) -> tuple[int, int]:
    """(recorded figure, figure from the rows as they are now) for one account."""
    estimate = account_bytes_sql(db.dialect, "accounts.id")
    row = db.execute(
        f"SELECT snapshot_bytes, {estimate} FROM accounts WHERE id = ?",  # noqa: S608
        [account_id],
    ).fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def total_bytes(db: Session) -> int:
    return int(db.execute("SELECT coalesce(sum(snapshot_bytes), 0) FROM accounts").fetchone()[0])
