"""First start: create the operator credential, a default account and tokens.

Tokens are written once to 0600 files in the data directory; only their
hashes are stored, so a lost file means minting a new credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from control_plane.domain.tokens import TokenKind
from control_plane.store.store import Store
from data_plane.shared.private_files import write_private

OPERATOR_FILE = "operator.token"
ADMIN_FILE = "admin.token"
DATA_PLANE_FILE = "data-plane.token"


@dataclass(frozen=True, slots=True)
class TokenFiles:
    operator: Path
    admin: Path
    data_plane: Path
    created: bool


def write_secret_file(path: Path, content: str) -> None:
    """Writes a token file (0600, atomically, never through a planted symlink)."""
    write_private(path, (content + "\n").encode("ascii"))


def bootstrap(store: Store, data_dir: Path) -> TokenFiles:
    files = TokenFiles(
        data_dir / OPERATOR_FILE, data_dir / ADMIN_FILE, data_dir / DATA_PLANE_FILE, False
    )
    if store.count_credentials("operator"):
        return files
    # Files are written inside the transaction: if writing fails nothing is
    # committed, and the next start tries again instead of leaving an
    # operator credential whose token nobody holds.
    with store.db.atomic():
        _, operator = store.create_credential(TokenKind.OPERATOR, account_id=None, name="operator")
        account = store.create_account("Default", "created on first start", "")
        _, admin = store.create_credential(
            TokenKind.ADMIN, account_id=account["id"], name="default admin key"
        )
        _, data_plane = store.create_credential(
            TokenKind.DATA_PLANE, account_id=None, name="local data plane"
        )
        write_secret_file(files.operator, operator)
        write_secret_file(files.admin, admin)
        write_secret_file(files.data_plane, data_plane)
    for label, path in (
        ("operator token", files.operator),
        (f"admin token of account {account['id']}", files.admin),
        ("data-plane token", files.data_plane),
    ):
        print(f"keyway: wrote the {label} to {path} (mode 0600)", flush=True)
    return TokenFiles(files.operator, files.admin, files.data_plane, True)


def reset_operator_token(store: Store, data_dir: Path) -> Path:
    """Revokes every operator credential and writes the token of a new one.

    For an operator who lost every operator token (or whose token leaked and was
    rotated by someone else): whoever may read the data directory is trusted anyway.
    """
    path = data_dir / OPERATOR_FILE
    with store.db.atomic():
        _, token = store.reset_operator_credentials("operator (reset)")
        # Inside the transaction: if the file cannot be written, nothing is revoked.
        write_secret_file(path, token)
    return path
