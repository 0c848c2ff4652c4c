"""Backends, one module each, chosen by URL scheme and imported only when used.

=====================  ================================  =====================
URL                    module                            needs
=====================  ================================  =====================
``memory://``          :mod:`shoal.backends.memory`      nothing (one process)
``sqlite:///path``     :mod:`shoal.backends.sqlite`      nothing (the default)
``postgresql://...``   :mod:`shoal.backends.postgres`    ``shoal[postgres]``
``redis://...``        :mod:`shoal.backends.redis`       ``shoal[redis]``
=====================  ================================  =====================
"""

from __future__ import annotations

import importlib

from shoal.backends.base import Backend, OnConflict
from shoal.core.errors import MissingDriver, UnsupportedBackend
from shoal.core.urls import redact, scheme_of

DEFAULT_URL = "sqlite:///shoal.db"
"""The embedded default: a file in the working directory, no server needed."""

_MODULES = {
    "memory": ("memory", None),
    "sqlite": ("sqlite", None),
    "postgresql": ("postgres", "postgres"),
    "postgres": ("postgres", "postgres"),
    "redis": ("redis", "redis"),
    "rediss": ("redis", "redis"),
}


def open_backend(url: str | None = None) -> Backend:
    """Build (not yet connect) the backend for ``url``; ``None`` means :data:`DEFAULT_URL`."""
    url = url or DEFAULT_URL
    scheme = scheme_of(url)
    if scheme not in _MODULES:
        raise UnsupportedBackend(
            f"no backend serves {redact(url)!r}: use memory://, sqlite:///path, "
            "postgresql://user@host/db or redis://host:6379/0"
        )
    module_name, extra = _MODULES[scheme]
    try:
        module = importlib.import_module(f"shoal.backends.{module_name}")
    except ModuleNotFoundError as exc:
        if extra is None or (exc.name or "").startswith("shoal"):
            raise
        raise MissingDriver(module_name, extra) from exc
    backend: Backend = module.from_url(url)
    return backend


__all__ = ["DEFAULT_URL", "Backend", "OnConflict", "open_backend"]
