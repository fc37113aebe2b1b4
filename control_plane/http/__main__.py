"""Prints the admin REST API's OpenAPI document (`make openapi`)."""

from __future__ import annotations

import json
import sys

from control_plane.http import admin_router
from control_plane.http.openapi import document
from control_plane.server import ADMIN_SERVICES

json.dump(document(admin_router(list(ADMIN_SERVICES))), sys.stdout, indent=2)
sys.stdout.write("\n")
