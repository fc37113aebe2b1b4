"""Running the real `keyway admin` commands in-process, with captured output."""

from __future__ import annotations

import io
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from control_plane.cli.main import main

from .control_planes import RunningControlPlane

TOKEN_LINE = re.compile(r"^Token \(shown once, store it now\): (\S+)$", re.MULTILINE)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Cli = Callable[..., Result]


def runner(
    control_plane: RunningControlPlane, capsys: pytest.CaptureFixture[str], default_token: str
) -> Cli:
    """`keyway admin --addr … --token … ARGS`, as `default_token` unless told otherwise."""

    def run(*argv: str, token: str | None = None, stdin: str | None = None) -> Result:
        # Start from clean streams so a Result holds only this command's output.
        capsys.readouterr()
        command = ["admin", "--addr", control_plane.address, "--token", token or default_token]
        saved_stdin = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            code = main([*command, *argv])
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
        finally:
            sys.stdin = saved_stdin
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


def ok(result: Result) -> Result:
    assert result.code == 0, result.err
    assert result.err == ""
    return result
