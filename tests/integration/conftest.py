"""Fixtures: a real control plane on 127.0.0.1:0 with a temporary data directory.

The helpers they are built from live in `control_planes`, which tests import.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from control_plane.server import Settings

from .control_planes import RunningControlPlane, connected, start_control_plane, stop_control_plane


@pytest.fixture
def control_plane_settings(tmp_path: Path) -> Settings:
    return Settings(listen="127.0.0.1:0", data_dir=tmp_path / "data")


@pytest.fixture
def control_plane(control_plane_settings: Settings) -> Iterator[RunningControlPlane]:
    server, loop = start_control_plane(control_plane_settings)
    try:
        with connected(server, control_plane_settings.data_dir) as cp:
            yield cp
    finally:
        stop_control_plane(server, loop)
