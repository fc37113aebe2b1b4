"""First start: create the operator credential, a default account and tokens.

Tokens are written once to 0600 files in the data directory; only their
hashes are stored, so a lost file means minting a new credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from control_plane.domain import tokens
from control_plane.domain.tokens import TokenKind
from control_plane.store.port import Store
from control_plane.store.records import Labels
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
    # Replicas of a shared database starting together: one creates, the others wait for
    # it and find the operator credential (their token files stay unwritten).
    with store.exclusive("first-start", wait=True):
        if store.count_credentials(TokenKind.OPERATOR):
            return files
        return _first_start(store, files)


def _first_start(store: Store, files: TokenFiles) -> TokenFiles:
    operator = tokens.mint(TokenKind.OPERATOR)
    admin = tokens.mint(TokenKind.ADMIN)
    data_plane = tokens.mint(TokenKind.DATA_PLANE)
    # Files are written inside the transaction: if writing fails nothing is
    # committed, and the next start tries again instead of leaving an
    # operator credential whose token nobody holds.
    with store.transaction():
        store.create_credential(
            TokenKind.OPERATOR, account_id=None, fields=Labels(name="operator"), token=operator
        )
        account = store.create_account(Labels(name="Default", description="created on first start"))
        store.create_credential(
            TokenKind.ADMIN,
            account_id=account.id,
            fields=Labels(name="default admin key"),
            token=admin,
        )
        store.create_credential(
            TokenKind.DATA_PLANE,
            account_id=None,
            fields=Labels(name="local data plane"),
            token=data_plane,
        )
        write_secret_file(files.operator, operator)
        write_secret_file(files.admin, admin)
        write_secret_file(files.data_plane, data_plane)
    for label, path in (
        ("operator token", files.operator),
        (f"admin token of account {account.id}", files.admin),
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
    token = tokens.mint(TokenKind.OPERATOR)
    with store.transaction():
        store.reset_operator_credentials(Labels(name="operator (reset)"), token)
        # Inside the transaction: if the file cannot be written, nothing is revoked.
        write_secret_file(path, token)
    return path
