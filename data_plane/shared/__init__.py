"""What both planes share: private files on disk, address rules and process hardening.

The only data-plane package the control plane may import (a test enforces it), so the
rules here hold identically on both sides.
"""
