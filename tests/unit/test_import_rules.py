"""The dependency rules, checked by reading the imports.

The data plane may depend on the generated contract (`keyway.*`) but never on
control-plane internals; the control plane may use of the data plane only what both
planes share (`data_plane.shared`, plus the few modules listed below until they move
there); pure modules import no I/O libraries at all.
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
PURE_MODULES = ("data_plane/shared/addresses.py", "data_plane/shared/limits.py")
SHARED = "data_plane.shared"
# Data-plane modules the control plane still imports outside `data_plane.shared`: the
# snapshot validator and token format (shared contract that has yet to move), and the CLI
# entry points that start a proxy or the mock upstream.
CONTROL_PLANE_MAY_IMPORT = {
    "data_plane.routing.validate",
    "data_plane.routing",  # `from data_plane.routing import tokens`
    "data_plane.http.proxy",
    "data_plane.http.connections",
    "data_plane.routing.policy",
    "data_plane.routing.admission",
    "data_plane.mock_upstream.server",
    "data_plane.runner",
}


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


@pytest.mark.parametrize("path", python_files("control_plane"), ids=lambda p: p.name)
def test_control_plane_imports_only_what_the_planes_share(path: Path) -> None:
    offending = [
        m
        for m in imported_modules(path)
        if m.split(".")[0] == "data_plane"
        and not (m == SHARED or m.startswith(SHARED + "."))
        and m not in CONTROL_PLANE_MAY_IMPORT
    ]
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


@pytest.mark.parametrize("path", python_files("data_plane/shared"), ids=lambda p: p.name)
def test_the_shared_package_depends_on_no_plane(path: Path) -> None:
    offending = [
        m
        for m in imported_modules(path)
        if m.split(".")[0] == "control_plane"
        or (m.split(".")[0] == "data_plane" and not m.startswith(SHARED))
    ]
    assert not offending, f"{path.relative_to(ROOT)} imports {offending}"


@pytest.mark.parametrize(
    "path",
    [
        *(p for package in PURE_PACKAGES for p in python_files(package)),
        *(ROOT / module for module in PURE_MODULES),
    ],
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_pure_modules_do_no_io(path: Path) -> None:
    offending = [m for m in imported_modules(path) if m.split(".")[0] in IO_LIBRARIES]
    assert not offending, f"{path.relative_to(ROOT)} is pure but imports {offending}"


def test_the_checker_sees_imports() -> None:
    # Guards the guard: a module with a forbidden import must be caught.
    sample = ROOT / "control_plane" / "store" / "sqlite" / "database.py"
    assert "sqlite_utils" in set(imported_modules(sample))
