"""The repository stands alone: nothing cites design notes that are not part of it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Spelled in pieces so that this file does not match itself.
_CITATION = re.compile(
    "(ARCHITECTURE|PRODUCT)" + r"(\.md)?\s*" + "\u00a7" + "|(ARCHITECTURE|PRODUCT)" + r"\.md"
)
_SOURCES = ("control_plane", "data_plane", "tests", "proto")
_SUFFIXES = {".py", ".proto", ".md", ".toml", ".yaml", ".json"}


def _files() -> list[Path]:
    found = [ROOT / name for name in ("README.md", "Makefile", "pyproject.toml", "buf.yaml")]
    for top in _SOURCES:
        found += [p for p in (ROOT / top).rglob("*") if p.suffix in _SUFFIXES and p.is_file()]
    return found


def test_no_file_cites_notes_outside_the_repository() -> None:
    cited = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _files()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if _CITATION.search(line)
    ]
    assert not cited, "move the fact into the README or the module docstring: " + ", ".join(cited)


def test_the_check_finds_a_citation() -> None:
    assert _CITATION.search("see " + "ARCHITECTURE" + ".md for why")
    assert _CITATION.search("the " + "PRODUCT" + " \u00a72 table")
