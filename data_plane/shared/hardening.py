"""Process-level protection for programs that hold provider keys in memory.

A core dump of the control plane or of a proxy would write every provider key it holds
to disk, where crash collectors keep them for days. Both entry points call
`disable_core_dumps()` before they load any secret.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import resource
import sys

log = logging.getLogger("keyway.hardening")

_PR_SET_DUMPABLE = 4


def disable_core_dumps() -> None:
    """No core file (RLIMIT_CORE 0, soft and hard) and, on Linux, not dumpable at all:
    the kernel then writes no core even through a crash-collector pipe, and other
    processes of the same user cannot ptrace this one to read its memory."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        failed = libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0
    except (OSError, AttributeError):
        failed = True
    if failed:
        # RLIMIT_CORE still stops ordinary core files; say so rather than stop.
        log.warning("could not mark the process non-dumpable (prctl failed)")
