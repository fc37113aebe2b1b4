"""The CLI's argparse flavour: one error line, usage of the right subcommand, defaults in help."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any, NoReturn


class HelpFormatter(argparse.HelpFormatter):
    """Appends each option's default to its help, unless the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if not action.option_strings or "default" in text or not shown_default(action):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def shown_default(action: argparse.Action) -> bool:
    """Whether a default is worth printing: not unset, off, empty or suppressed."""
    default = action.default
    if default is None or isinstance(default, bool) or default is argparse.SUPPRESS:
        return False
    return default not in ("", [])


class Parser(argparse.ArgumentParser):
    """argparse with Keyway's error line; subcommands inherit it (and its help format).

    Each parser records itself as `usage_parser`; the deepest subcommand's value wins, so
    `main` knows whose usage to print for an unrecognised flag.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        # `--latency 5` must not quietly mean `--latency-ms 5`: a typo is reported, and a
        # flag added later can never make an abbreviation someone relies on ambiguous.
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.set_defaults(usage_parser=self)

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"keyway: error: {message} (see `{self.prog} --help`)\n")


def subcommands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below `parser`, depth first, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                yield child
                yield from subcommands(child)
