"""Backends from other packages, found through the ``shoal.backends`` entry-point group.

A package registers a backend for a URL scheme in its ``pyproject.toml``::

    [project.entry-points."shoal.backends"]
    mine = "shoal_mine:from_url"

The name is the scheme, the value a callable that takes the URL and returns a
:class:`~shoal.backends.base.Backend` (built, not yet opened). Only schemes that no built-in
backend serves are looked up here: a plugin never shadows ``sqlite://`` and the others.
"""

from __future__ import annotations

from collections.abc import Collection
from importlib.metadata import EntryPoint, entry_points
from urllib.parse import urlsplit

from shoal.backends.base import Backend
from shoal.core.errors import BackendPluginError, ShoalError
from shoal.core.urls import redact

GROUP = "shoal.backends"
"""The entry-point group: name = URL scheme, value = ``module:factory`` taking the URL."""


def installed() -> dict[str, list[EntryPoint]]:
    """Every registered scheme (lower case, as URL schemes compare) and the entry points
    claiming it: more than one when several distributions register the same scheme."""
    schemes: dict[str, list[EntryPoint]] = {}
    for entry in entry_points(group=GROUP):
        schemes.setdefault(entry.name.lower(), []).append(entry)
    return schemes


def distribution_of(entry: EntryPoint) -> str:
    """The name of the distribution that registered ``entry``, as ``pip list`` shows it."""
    dist = entry.dist
    return "<unknown>" if dist is None else f"{dist.name} {dist.version}"


def listing(registered: dict[str, list[EntryPoint]], *, built_in: Collection[str]) -> str:
    """What the installed plugins serve, for an error about a scheme nobody serves."""

    def listed(schemes: list[str]) -> str:
        return ", ".join(
            f"{scheme}:// ({', '.join(distribution_of(e) for e in registered[scheme])})"
            for scheme in schemes
        )

    served = [scheme for scheme in sorted(registered) if scheme not in built_in]
    shadowing = [scheme for scheme in sorted(registered) if scheme in built_in]
    text = f"installed plugins serve {listed(served) if served else 'no other scheme'}"
    if shadowing:
        text += f" (ignored, as built in: {listed(shadowing)})"
    return f"{text}; a package adds one in the {GROUP!r} entry-point group"


def open_plugin(scheme: str, claims: list[EntryPoint], url: str) -> Backend:
    """Build the backend the one entry point claiming ``scheme`` makes of ``url``."""
    if len(claims) > 1:
        names = " and ".join(sorted(distribution_of(entry) for entry in claims))
        raise BackendPluginError(scheme, names, "is ambiguous: uninstall all but one of them")
    [entry] = claims
    distribution = distribution_of(entry)
    try:
        factory = entry.load()
    except Exception as exc:  # whatever the plugin's import raises, name the plugin
        problem = f"failed to load {entry.value!r}: {_describe(exc, url)}"
        raise BackendPluginError(scheme, distribution, problem) from exc
    try:
        backend = factory(url)
    except ShoalError:
        raise  # the plugin's own typed error (a bad URL, say) says more than a wrapper
    except Exception as exc:
        problem = f"failed to build a backend for {redact(url)!r}: {_describe(exc, url)}"
        raise BackendPluginError(scheme, distribution, problem) from exc
    if not isinstance(backend, Backend):
        problem = (
            f"is broken: {entry.value!r} returned a {type(backend).__qualname__!r}, "
            "not a shoal.backends.Backend"
        )
        raise BackendPluginError(scheme, distribution, problem)
    return backend


def _describe(exc: Exception, url: str) -> str:
    """The plugin's error in one line, without the URL's password should it quote it."""
    text = f"{type(exc).__name__}: {exc}"
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text
