"""The README's configuration reference, generated from the argparse parsers.

A test compares the README with `reference_markdown()`, so every flag of every command is
documented, with the default and choices the parser really has. After changing a flag, run
`python -m control_plane.cli.reference README.md` to rewrite the README's copy.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from .main import build_parser
from .parsing import shown_default, subcommands

START = "<!-- cli-reference: generated from the argparse parsers; a test keeps it in sync -->"
END = "<!-- /cli-reference -->"
_CONNECTION = "connection options"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _flag(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest.upper()}`"
    formatter = argparse.HelpFormatter("keyway")
    # The same spelling `--help` prints: metavar, or choices in braces.
    value = formatter._format_args(action, action.dest.upper()) if action.nargs != 0 else ""
    return _cell(f"`{' '.join([action.option_strings[-1], value]).strip()}`")


def _default(action: argparse.Action) -> str:
    if action.required and action.option_strings:
        return "required"
    if not shown_default(action) or "default" in (action.help or ""):
        return ""  # nothing to show, or the help says it in words
    default = action.default
    if isinstance(default, float) and default.is_integer():
        default = int(default)
    return f"`{default}`"


def _actions(parser: argparse.ArgumentParser, *, connection: bool) -> Iterator[argparse.Action]:
    """The parser's own arguments; connection options only where `connection` says so."""
    for group in parser._action_groups:
        if (group.title == _CONNECTION) != connection:
            continue
        for action in group._group_actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            yield action


def _meaning(action: argparse.Action) -> str:
    text = action.help or ""
    if "%(default)" in text:
        text = text % {"default": action.default}
    return _cell(text)


def _table(parser: argparse.ArgumentParser, *, connection: bool = False) -> list[str]:
    rows = [
        f"| {_flag(a)} | {_default(a)} | {_meaning(a)} |"
        for a in _actions(parser, connection=connection)
    ]
    return ["| Flag | Default | Meaning |", "|---|---|---|", *rows] if rows else []


def _admin_table(admin: argparse.ArgumentParser) -> list[str]:
    rows = ["| Command | Argument or flag | Meaning |", "|---|---|---|"]
    for parser in subcommands(admin):
        if any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
            continue  # a group such as `admin provider-keys`: its commands are listed
        command = f"`{parser.prog.removeprefix('keyway admin ')}`"
        actions = list(_actions(parser, connection=False))
        if not actions:
            rows.append(f"| {command} | | {_cell(parser.description or '')} |")
        for action in actions:
            default = _default(action)
            meaning = _meaning(action) + (f" ({default})" if default else "")
            rows.append(f"| {command} | {_flag(action)} | {meaning} |")
            command = ""
    return rows


def reference_markdown() -> str:
    parser = build_parser()
    lines = [
        "Every command also takes the global flags before it: "
        "`keyway [--version] [--log-level LEVEL] COMMAND …`.",
        "",
        *_table(parser),
    ]
    for command in subcommands(parser):
        if command.prog.count(" ") > 1:
            continue  # below `admin`: listed in its table
        description = _cell(command.description or "")
        lines += ["", f"#### `{command.prog}`", "", description[:1].upper() + description[1:], ""]
        if command.prog == "keyway admin":
            lines += [
                "Connection options, accepted after `admin` and after each command:",
                "",
                *_table(command, connection=True),
                "",
                *_admin_table(command),
            ]
        else:
            lines += _table(command)
    return "\n".join(lines)


def rewrite(readme: Path) -> bool:
    """Replaces the README's copy; True if it changed."""
    text = readme.read_text(encoding="utf-8")
    start = text.index("\n", text.index(START)) + 1
    end = text.index(END)
    updated = f"{text[:start]}{reference_markdown()}\n{text[end:]}"
    if updated == text:
        return False
    readme.write_text(updated, encoding="utf-8")
    return True


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m control_plane.cli.reference README.md")
    print("rewritten" if rewrite(Path(sys.argv[1])) else "already up to date")
