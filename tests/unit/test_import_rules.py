"""The dependency rules, checked by reading the code.

- The plane boundary, both ways: the data plane never imports the control plane; the
  control plane imports of the data plane only `data_plane.shared` (what both planes
  share), except that the CLI may import the entry points that start a proxy or the mock
  upstream; and `data_plane.shared` depends on neither plane.
- Pure modules, listed below for both planes, do no I/O, read no clock and draw no
  randomness: they import none of the modules that could, and call no `open`, `print`
  or `datetime.now`. Time and randomness are handed in. Every module whose docstring
  says it is pure must be on the list, so the claim cannot go unchecked.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pure import NOT_PURE, pure_modules

ROOT = Path(__file__).resolve().parents[2]

SHARED = "data_plane.shared"
ENTRY_POINTS = {"data_plane.runner", "data_plane.mock_upstream.server"}
"""What `control_plane/cli` may import beyond `data_plane.shared`: the proxy's runner (with
the settings it takes) and the mock upstream's server, which `keyway proxy`, `up`,
`demo` and `mock-upstream` start."""

IMPURE_IMPORTS = {
    # network, processes, threads, event loops
    "asyncio",
    "grpc",
    "grpc_health",
    "grpc_reflection",
    "grpc_status",
    "httpx",
    "aiohttp",
    "starlette",
    "uvicorn",
    "socket",
    "ssl",
    "select",
    "selectors",
    "signal",
    "subprocess",
    "threading",
    "concurrent",
    "multiprocessing",
    "http",
    "urllib.request",
    # files, the OS, storage
    "os",
    "io",
    "pathlib",
    "shutil",
    "tempfile",
    "glob",
    "fcntl",
    "resource",
    "ctypes",
    "sys",
    "importlib.resources",
    "sqlite3",
    "sqlite_utils",
    "psycopg",
    "psycopg_pool",
    # clocks and randomness
    "time",
    "random",
    "secrets",
    "uuid",
    # key material belongs to the shells that hold it
    "cryptography",
}
IMPURE_CALLS = {"open", "print", "input", "breakpoint"}
CLOCK_METHODS = {"now", "utcnow", "today"}  # datetime.now() and the like

_CLAIMS_PURE = re.compile(r"\bPure\b|\(pure\)")


def imported_modules(path: Path) -> Iterator[str]:
    """Every module `path` imports, nested and type-checking imports included; for
    `from a import b` both `a` and `a.b` (b may be a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def impure_calls(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in IMPURE_CALLS:
            yield f"{node.func.id}() on line {node.lineno}"
        elif isinstance(node.func, ast.Attribute) and node.func.attr in CLOCK_METHODS:
            yield f".{node.func.attr}() on line {node.lineno}"


def _forbidden(module: str) -> bool:
    return any(module == name or module.startswith(name + ".") for name in IMPURE_IMPORTS)


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_there_is_code_to_check() -> None:
    assert python_files("control_plane/domain")
    assert python_files("data_plane")
    assert all(path.is_file() for path in pure_modules())
    assert all((ROOT / name).is_file() for name in NOT_PURE)


@pytest.mark.parametrize("path", python_files("data_plane"), ids=_relative)
def test_data_plane_never_imports_the_control_plane(path: Path) -> None:
    offending = [m for m in imported_modules(path) if m.split(".")[0] == "control_plane"]
    assert not offending, f"{_relative(path)} imports {offending}"


def _control_plane_may_import(path: Path, module: str) -> bool:
    if module.split(".")[0] != "data_plane":
        return True
    if module == SHARED or module.startswith(SHARED + "."):
        return True
    in_cli = path.is_relative_to(ROOT / "control_plane" / "cli")
    # `from data_plane.runner import ProxySettings` also yields data_plane.runner.ProxySettings.
    return in_cli and any(module == e or module.startswith(e + ".") for e in ENTRY_POINTS)


@pytest.mark.parametrize("path", python_files("control_plane"), ids=_relative)
def test_control_plane_imports_only_what_the_planes_share(path: Path) -> None:
    offending = [m for m in imported_modules(path) if not _control_plane_may_import(path, m)]
    assert not offending, f"{_relative(path)} imports {offending}"


@pytest.mark.parametrize("path", python_files("data_plane/shared"), ids=_relative)
def test_the_shared_package_depends_on_no_plane(path: Path) -> None:
    offending = [
        m
        for m in imported_modules(path)
        if m.split(".")[0] == "control_plane"
        or (m.split(".")[0] == "data_plane" and not m.startswith(SHARED))
    ]
    assert not offending, f"{_relative(path)} imports {offending}"


@pytest.mark.parametrize("path", pure_modules(), ids=_relative)
def test_pure_modules_do_no_io_and_read_no_clock(path: Path) -> None:
    offending = [m for m in imported_modules(path) if _forbidden(m)]
    assert not offending, f"{_relative(path)} is pure but imports {offending}"
    calls = list(impure_calls(path))
    assert not calls, f"{_relative(path)} is pure but calls {calls}"


def _claims_purity(path: Path) -> bool:
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return bool(_CLAIMS_PURE.search(docstring.split("\n\n")[0]))


def test_every_module_that_says_it_is_pure_is_checked() -> None:
    listed = {_relative(path) for path in pure_modules()}
    claiming = {
        _relative(path)
        for plane in ("control_plane", "data_plane")
        for path in python_files(plane)
        if _claims_purity(path)
    }
    assert claiming - listed == set(), "add them to PURE_MODULES (and make them pure)"


def test_the_checkers_see_what_they_look_for() -> None:
    # Guards the guards: forbidden imports and calls must be caught where they are.
    assert "sqlite_utils" in set(imported_modules(ROOT / "control_plane/store/sqlite/database.py"))
    assert "importlib.resources" in set(imported_modules(ROOT / "control_plane/domain/catalog.py"))
    assert _forbidden("importlib.resources")
    assert _forbidden("os.path")
    assert not _forbidden("osx")
    assert any(c.startswith("print()") for c in impure_calls(ROOT / "control_plane/cli/demo.py"))
    assert not _control_plane_may_import(ROOT / "control_plane/server.py", "data_plane.runner")
    assert _control_plane_may_import(ROOT / "control_plane/cli/main.py", "data_plane.runner")
    assert _claims_purity(ROOT / "data_plane/routing/engine.py") is False
    assert _claims_purity(ROOT / "data_plane/routing/admission.py")


def _imports_relative_conftest(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return any(
        isinstance(node, ast.ImportFrom) and node.level and node.module == "conftest"
        for node in ast.walk(tree)
    )


def test_tests_import_no_conftest() -> None:
    # Fixtures come from conftest.py through pytest; helpers live in modules of their own.
    offending = [
        _relative(path)
        for path in python_files("tests")
        if any(m.split(".")[-1] == "conftest" for m in imported_modules(path))
        or _imports_relative_conftest(path)
    ]
    assert not offending, offending
