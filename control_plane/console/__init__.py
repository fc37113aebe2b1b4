"""The web console: static pages on the control plane's HTTP listener, a client of the REST API.

Plain HTML, CSS and ES modules shipped as package data (`static/`), no build step and no
Node toolchain: a browser loads them as they are, and every page calls the same public REST
API as curl does, so the console can never do what the API would refuse. Pages render all
data with DOM text nodes (never HTML strings), so a name like `<img src=x onerror=…>` shows
as text; the Content-Security-Policy allows scripts and styles from this origin only.

Signing in exchanges an admin API key or the operator token for a session
(`sessions.Sessions`): an HttpOnly, SameSite=Strict cookie (Secure under TLS) holding an
opaque id. `SessionAuth` turns that cookie into the `Authorization` header of REST calls;
writes made with the cookie also need the session's CSRF value in `X-Keyway-CSRF` and, when
the browser sends an `Origin`, this listener's own. Calls with an `Authorization` header
are untouched (the cookie is ignored), so Bearer clients work as before.
"""

from __future__ import annotations

from .routes import Console

__all__ = ["Console"]
