"""Backends, one module each, chosen by URL scheme and imported only when used.

=====================  ================================  =====================
URL                    module                            needs
=====================  ================================  =====================
``memory://``          :mod:`shoal.backends.memory`      nothing (one process)
``sqlite:///path``     :mod:`shoal.backends.sqlite`      nothing (the default)
``postgresql://...``   :mod:`shoal.backends.postgres`    ``shoal[postgres]``
``redis://...``        :mod:`shoal.backends.redis`       ``shoal[redis]``
=====================  ================================  =====================

Any other scheme is looked up among the backends other packages register in the
``shoal.backends`` entry-point group (:mod:`shoal.backends.plugins`; ``docs/backends.md``
says how to write one). A built-in scheme always means the built-in backend.
"""

from __future__ import annotations

import importlib

from shoal.backends import plugins
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
    """Build (not yet connect) the backend for ``url``; ``None`` means :data:`DEFAULT_URL`.

    Built-in schemes come first; any other is served by the installed plugin registering it.
    """
    url = url or DEFAULT_URL
    scheme = scheme_of(url)
    if scheme in _MODULES:
        return _open_built_in(scheme, url)
    registered = plugins.installed()
    if scheme in registered:
        return plugins.open_plugin(scheme, registered[scheme], url)
    raise UnsupportedBackend(
        f"no backend serves {redact(url)!r}: "
        f"built in are {', '.join(f'{name}://' for name in _MODULES)}; "
        f"{plugins.listing(registered, built_in=_MODULES)}"
    )


def _open_built_in(scheme: str, url: str) -> Backend:
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
