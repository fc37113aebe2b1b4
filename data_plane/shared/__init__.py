"""What both planes share: the only data-plane code the control plane may import (a
test enforces it), so these rules hold identically on both sides: start-up checks,
private files on disk, address rules, process hardening, shared limits.
"""
