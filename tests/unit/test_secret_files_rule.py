"""Every file either plane writes goes through `data_plane.shared.private_files`.

Tokens, master keys, the cache key and the snapshot cache are secret, and the helper is
what gives them their guarantees (no symlink followed, never half-written, 0600 from
the first byte, refused when anyone else could read or swap them). So no other module
may write, create, rename or re-mode a file itself; the few that write something that
is not secret are listed with the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HELPER = "data_plane/shared/private_files.py"
NOT_SECRET = {
    "control_plane/cli/reference.py": "writes the configuration reference into README.md",
    "control_plane/cli/demo.py": "makes the demo's data directory (mkdtemp: 0700)",
}
# Method and function names that write, create, rename or re-mode files.
_WRITERS = {
    "write_bytes",
    "write_text",
    "mkdir",
    "makedirs",
    "touch",
    "rename",
    "replace",
    "chmod",
    "fchmod",
    "symlink_to",
    "hardlink_to",
    "copy",
    "copyfile",
    "copytree",
    "move",
    "mkstemp",
    "mkdtemp",
    "NamedTemporaryFile",
    "TemporaryDirectory",
    "TemporaryFile",
}
_OS_WRITERS = {"open", "replace", "rename", "write", "chmod", "mkdir", "makedirs"}


def _calls(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id == "open":
            yield f"open() on line {node.lineno}"
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else ""
            # str.replace takes two strings; Path.replace and os.replace take paths: only
            # the latter are named `replace` with one argument or on `os`.
            if func.attr == "replace" and owner != "os" and len(node.args) != 1:
                continue
            if (owner == "os" and func.attr in _OS_WRITERS) or (
                owner != "os" and func.attr in _WRITERS
            ):
                yield f"{owner + '.' if owner else ''}{func.attr}() on line {node.lineno}"


def _modules() -> list[Path]:
    found = [*(ROOT / "control_plane").rglob("*.py"), *(ROOT / "data_plane").rglob("*.py")]
    return sorted(p for p in found if str(p.relative_to(ROOT)) not in {HELPER, *NOT_SECRET})


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_writes_a_file_but_through_the_helper(path: Path) -> None:
    found = list(_calls(path))
    assert not found, f"{path.relative_to(ROOT)}: {found}; use data_plane.shared.private_files"


def test_the_check_finds_writes() -> None:
    helper = list(_calls(ROOT / HELPER))
    assert any(c.startswith("os.open()") for c in helper)
    assert any(c.startswith("os.replace()") for c in helper)
    assert any(c.startswith("path.mkdir()") for c in helper)
    assert any(".write_text()" in c for c in _calls(ROOT / "control_plane/cli/reference.py"))
