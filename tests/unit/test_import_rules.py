"""The dependency rules, checked by reading the imports.

The data plane may depend on the generated contract (`keyway.*`) but never on
control-plane internals; pure modules import no I/O libraries at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IO_LIBRARIES = {
    "grpc",
    "grpc_health",
    "grpc_reflection",
    "grpc_status",
    "httpx",
    "aiohttp",
    "starlette",
    "uvicorn",
    "sqlite3",
    "sqlite_utils",
    "cryptography",
    "socket",
    "asyncio",
}
# Packages whose modules must stay free of I/O (pure core).
PURE_PACKAGES = ("control_plane/domain", "data_plane/routing")


def imported_modules(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_there_is_code_to_check() -> None:
    assert python_files("control_plane/domain")
    assert python_files("data_plane")


@pytest.mark.parametrize("path", python_files("data_plane"), ids=lambda p: p.name)
def test_data_plane_never_imports_the_control_plane(path: Path) -> None:
    offending = [m for m in imported_modules(path) if m.split(".")[0] == "control_plane"]
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


@pytest.mark.parametrize(
    "path",
    [p for package in PURE_PACKAGES for p in python_files(package)],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pure_modules_do_no_io(path: Path) -> None:
    offending = [m for m in imported_modules(path) if m.split(".")[0] in IO_LIBRARIES]
    assert not offending, f"{path.relative_to(ROOT)} is pure but imports {offending}"


def test_the_checker_sees_imports() -> None:
    # Guards the guard: a module with a forbidden import must be caught.
    sample = ROOT / "control_plane" / "store" / "database.py"
    assert "sqlite_utils" in set(imported_modules(sample))
