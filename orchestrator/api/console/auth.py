"""The console's session: a login form exchanges the API token for a session cookie.

The cookie holds an HMAC of the token, not the token, so it is worthless once the
token changes and reveals nothing of it. The pages keep the token itself in the
tab's ``sessionStorage`` to call the JSON API with ``Authorization: Bearer``; the
cookie only lets the browser load the pages and their assets, which it cannot send
a header for. With no token configured, everything is open, as the API is.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from fastapi import Request

from orchestrator.api.errors import ApiError
from orchestrator.settings import Settings

#: The session cookie's name.
COOKIE: Final = "orchestrator_console"
#: What the cookie's HMAC signs, so the value is useless anywhere else.
_PURPOSE: Final = b"orchestrator-console-session-v1"


def expected_token(settings: Settings) -> str | None:
    """The configured API token, None when none (or an empty one) is set."""
    token = settings.api_token.get_secret_value() if settings.api_token else ""
    return token or None


def session_value(token: str) -> str:
    """The cookie value for ``token``."""
    return hmac.new(token.encode(), _PURPOSE, hashlib.sha256).hexdigest()


def token_matches(settings: Settings, given: str) -> bool:
    """Whether ``given`` is the configured token (constant time)."""
    expected = expected_token(settings)
    return expected is None or secrets.compare_digest(given.encode(), expected.encode())


def has_session(request: Request, settings: Settings) -> bool:
    """Whether the request may see console pages: no token set, a session cookie or a bearer."""
    expected = expected_token(settings)
    if expected is None:
        return True
    cookie = request.cookies.get(COOKIE, "")
    if cookie and secrets.compare_digest(cookie.encode(), session_value(expected).encode()):
        return True
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and token_matches(settings, given)


def require_session(request: Request, settings: Settings) -> None:
    """Raise 401 unless :func:`has_session`."""
    if not has_session(request, settings):
        raise ApiError(
            401,
            "Unauthorized",
            "log in at /console/login, or send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )


__all__ = [
    "COOKIE",
    "expected_token",
    "has_session",
    "require_session",
    "session_value",
    "token_matches",
]
