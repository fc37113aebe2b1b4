"""The README's error catalog and configuration reference are the code's."""

from __future__ import annotations

from pathlib import Path

from control_plane.cli import reference
from control_plane.cli.main import build_parser
from control_plane.cli.parsing import subcommands
from data_plane.routing.errors import catalog_markdown

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_error_table_matches_the_catalog() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n", text.index("<!-- error-catalog")) + 1
    end = text.index("<!-- /error-catalog -->")
    assert text[start:end].strip() == catalog_markdown(), (
        "README error table is stale: paste data_plane.routing.errors.catalog_markdown() into it"
    )


def test_readme_configuration_reference_matches_the_parsers() -> None:
    text = README.read_text(encoding="utf-8")
    start = text.index("\n", text.index(reference.START)) + 1
    end = text.index(reference.END)
    assert text[start:end].strip() == reference.reference_markdown(), (
        "README configuration reference is stale: run "
        "`.venv/bin/python -m control_plane.cli.reference README.md`"
    )


def test_the_reference_lists_every_flag_of_every_command() -> None:
    generated = reference.reference_markdown()
    parser = build_parser()
    for command in [parser, *subcommands(parser)]:
        for action in command._actions:
            for flag in action.option_strings:
                if flag.startswith("--") and flag != "--help":
                    assert f"`{flag}" in generated, f"{command.prog} {flag}"
