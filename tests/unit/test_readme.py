"""The README's error catalog is the code's catalog."""

from __future__ import annotations

from pathlib import Path

from data_plane.http.errors import catalog_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_error_table_matches_the_catalog() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n", text.index("<!-- error-catalog")) + 1
    end = text.index("<!-- /error-catalog -->")
    assert text[start:end].strip() == catalog_markdown(), (
        "README error table is stale: paste data_plane.http.errors.catalog_markdown() into it"
    )
