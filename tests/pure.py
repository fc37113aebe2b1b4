"""The pure modules of both planes, listed once: for the import rules and the coverage floor.

Pure means no I/O, no clock read and no randomness inside (time and randomness are
handed in); `tests/unit/test_import_rules.py` enforces it by reading their code.
`python -m tests.pure` prints their line coverage from the last `pytest --cov` run
and fails when one of them is below the floor (`make test` runs it).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Packages whose every module is pure, less the named exceptions; then single modules.
PURE_PACKAGES = ("control_plane/domain", "data_plane/routing")
NOT_PURE = {
    "control_plane/domain/catalog.py": "reads its packaged catalog.json once, at import",
    "control_plane/domain/ids.py": "mints ids from `secrets` unless randomness is passed in",
    "control_plane/domain/tokens.py": "mints tokens from `secrets` unless randomness is passed in",
}
PURE_MODULES = (
    "control_plane/snapshots/compiler.py",
    "control_plane/snapshots/assembly.py",
    "control_plane/cli/edits.py",
    "control_plane/http/bindings.py",
    "control_plane/http/errors.py",
    "control_plane/http/transcode.py",
    "data_plane/formats.py",
    "data_plane/shared/addresses.py",
    "data_plane/shared/limits.py",
    "data_plane/shared/tokens.py",
    "data_plane/shared/validate.py",
    "data_plane/snapshot/decide.py",
    "data_plane/snapshot/state.py",
    "data_plane/http/body.py",
    "data_plane/http/headers.py",
    "data_plane/http/jsonscan.py",
    "data_plane/http/sse.py",
    "data_plane/http/surfaces.py",
    "data_plane/http/types.py",
    "data_plane/usage/records.py",
    "data_plane/usage/tokens.py",
    "data_plane/mock_upstream/behaviours.py",
    "data_plane/mock_upstream/payloads.py",
    "data_plane/mock_upstream/sse.py",
)

FLOOR = 95.0
"""Least line coverage, in percent, of each pure module."""


def _relative(path: Path) -> str:
    return str(path.relative_to(ROOT))


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def pure_modules() -> list[Path]:
    found = [
        path
        for package in PURE_PACKAGES
        for path in python_files(package)
        if _relative(path) not in NOT_PURE
    ]
    return found + [ROOT / module for module in PURE_MODULES]


def main() -> int:
    import coverage  # only for this check: the tests themselves do not need it

    data = coverage.Coverage(data_file=str(ROOT / ".coverage"))
    data.load()
    below = []
    print(f"line coverage of the pure modules (floor {FLOOR:g} % each):")
    for path in pure_modules():
        _, statements, _, missing, _ = data.analysis2(str(path))
        percent = (
            100.0 * (len(statements) - len(missing)) / len(statements) if statements else 100.0
        )
        mark = "" if percent >= FLOOR else "   <- below the floor"
        print(f"  {percent:6.1f} %  {_relative(path)}{mark}")
        if percent < FLOOR:
            below.append(_relative(path))
    if below:
        print(f"{len(below)} pure module(s) below {FLOOR:g} %: {', '.join(below)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
