"""Who is asking, what they may do, and CSRF protection for every action.

Two roles: a viewer reads every page and the API; an admin also retries, cancels and
purges. A request proves who it is by HTTP Basic (a ``user:password`` credential, what a
browser asks for) or by ``Authorization: Bearer <token>`` (scripts). Secrets are compared in
constant time.

Browsers send Basic credentials by themselves with every request to the board, even one a
hostile page makes them send, so every action (a POST) authenticated that way must carry a
CSRF token the board put in its own form: an HMAC of the user's name under a per-process
secret. A bearer token is never sent by a browser on its own, so API calls with one need no
CSRF token. A POST whose ``Origin`` is another site is refused either way.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

CSRF_FIELD = "csrf_token"
"""The form field, or ``X-CSRF-Token`` header, that carries the token."""


class Role(enum.IntEnum):
    """Ordered: an admin may do everything a viewer may."""

    VIEWER = 1
    ADMIN = 2


@dataclass(frozen=True, slots=True)
class Credential:
    role: Role
    user: str | None
    """None for a bearer token."""
    secret: str

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return f"Credential({self.role.name}, user={self.user!r})"


@dataclass(frozen=True, slots=True)
class Principal:
    """Someone signed in."""

    name: str
    role: Role
    ambient: bool
    """Signed in by credentials the browser sends by itself (Basic): actions need CSRF."""

    @property
    def is_admin(self) -> bool:
        return self.role >= Role.ADMIN


def authenticate(header: str | None, credentials: Sequence[Credential]) -> Principal | None:
    """The principal an ``Authorization`` header proves, or None."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        for c in credentials:
            if c.user is None and _same(value.strip(), c.secret):
                return Principal(f"{c.role.name.lower()} token", c.role, ambient=False)
        return None
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    best = None
    for c in credentials:
        # Check every credential, so the time taken does not tell which user exists.
        if c.user is not None and _same(user, c.user) & _same(password, c.secret):
            best = c if best is None or c.role > best.role else best
    return None if best is None else Principal(user, best.role, ambient=True)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def csrf_token(secret: bytes, principal: Principal) -> str:
    """The token the board's forms carry for ``principal``."""
    return hmac.new(secret, principal.name.encode(), hashlib.sha256).hexdigest()


def csrf_valid(secret: bytes, principal: Principal, token: str | None) -> bool:
    return token is not None and hmac.compare_digest(token, csrf_token(secret, principal))


def same_origin(origin: str | None, host: str | None) -> bool:
    """Whether a request's ``Origin`` (absent from some clients: allowed) is the board."""
    if not origin:
        return True
    return origin != "null" and urlsplit(origin).netloc == (host or "")
