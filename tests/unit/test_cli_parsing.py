"""The CLI's help and usage errors, from the parsers themselves."""

from __future__ import annotations

import argparse
import re

import pytest

from control_plane.cli.main import build_parser, main
from control_plane.cli.parsing import shown_default, subcommands


def _every_parser() -> list[argparse.ArgumentParser]:
    parser = build_parser()
    return [parser, *subcommands(parser)]


def test_every_option_with_a_default_shows_it_in_help() -> None:
    missing = []
    for parser in _every_parser():
        text = " ".join(parser.format_help().split())
        for action in parser._actions:
            if not action.option_strings or not shown_default(action):
                continue
            if "default" in (action.help or ""):
                continue  # said in words, e.g. "(default: $KEYWAY_ADDR or 127.0.0.1:50051)"
            default = action.default
            shown = f"(default: {default})"
            if shown not in text:
                missing.append(f"{parser.prog} {action.option_strings[-1]}: {shown}")
    assert not missing


def test_choices_are_shown_and_enforced(capsys: pytest.CaptureFixture[str]) -> None:
    assert "--log-level {DEBUG,INFO,WARNING,ERROR}" in build_parser().format_help()
    with pytest.raises(SystemExit) as exited:
        main(["--log-level", "chatty", "demo"])
    assert exited.value.code == 2
    assert (
        "keyway: error: argument --log-level: invalid choice: 'CHATTY'" in capsys.readouterr().err
    )


def test_a_wrong_flag_prints_the_usage_of_the_command_it_was_given_to(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for argv, prog in (
        (["up", "--proxy-lisen", "127.0.0.1:1"], "keyway up"),
        (
            ["admin", "access-keys", "disable", "ak_1", "--forse"],
            "keyway admin access-keys disable",
        ),
        (["mock-upstream", "--latency", "5"], "keyway mock-upstream"),
    ):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
        err = capsys.readouterr().err
        assert err.startswith(f"usage: {prog} ")
        assert re.search(
            rf"^keyway: error: unrecognized arguments: .* \(see `{prog} --help`\)$", err, re.M
        )


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert re.fullmatch(r"keyway \d+\.\d+\.\d+\S*\n", capsys.readouterr().out)
