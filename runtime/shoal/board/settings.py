"""The board's settings: where it listens, which backend it reads, who may look and act.

Credentials come from the environment (a Kubernetes Secret is mounted as variables by the
chart); there is no anonymous access, so a board without any credentials refuses to start.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from shoal.board.auth import Credential, Role
from shoal.core.errors import ConfigurationError

CREDENTIAL_VARIABLES = {
    "SHOAL_BOARD_ADMIN": (Role.ADMIN, "user"),
    "SHOAL_BOARD_VIEWER": (Role.VIEWER, "user"),
    "SHOAL_BOARD_ADMIN_TOKEN": (Role.ADMIN, "token"),
    "SHOAL_BOARD_VIEWER_TOKEN": (Role.VIEWER, "token"),
}
"""Where credentials come from: ``user:password`` pairs, or bearer tokens, per role."""


@dataclass(frozen=True, slots=True)
class BoardSettings:
    """How one board serves."""

    backend_url: str
    """The same URL the workers use; shown redacted, never with its password."""
    credentials: tuple[Credential, ...]
    """Who may sign in; at least one, or the board would be open to anyone."""
    host: str = "127.0.0.1"
    """Loopback by default: the chart sets 0.0.0.0 inside its pod."""
    port: int = 8080
    refresh_seconds: float = 2.0
    """How often an open page updates itself; the issue allows 2 s at most."""
    csrf_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    """Signs the CSRF tokens of forms; random per process unless SHOAL_BOARD_CSRF_SECRET
    sets it, which several replicas behind one Service need."""

    def __post_init__(self) -> None:
        if not self.credentials:
            names = ", ".join(CREDENTIAL_VARIABLES)
            raise ConfigurationError(
                f"the board serves no one anonymously: set at least one of {names}"
            )
        if not 0 < self.refresh_seconds <= 2:
            raise ConfigurationError("the board refreshes every 2 s at most: 0 < refresh <= 2")


def credentials_from(environ: Mapping[str, str] | None = None) -> tuple[Credential, ...]:
    """Every credential the environment sets (see :data:`CREDENTIAL_VARIABLES`)."""
    environ = os.environ if environ is None else environ
    found = []
    for variable, (role, kind) in CREDENTIAL_VARIABLES.items():
        value = environ.get(variable, "")
        if not value:
            continue
        if kind == "token":
            found.append(Credential(role, None, value))
            continue
        user, colon, password = value.partition(":")
        if not (user and colon and password):
            raise ConfigurationError(f"{variable} must be user:password (with a password)")
        found.append(Credential(role, user, password))
    return tuple(found)
