"""Flags with environment twins: every flag reads ``SHOAL_<FLAG>`` when not given, and says
so in ``--help``. Settings flags are generated from an :class:`EnvSettings` class (the
worker's, the operator's), so the flag, the variable and the documentation are one thing.
Each such flag is also recorded as :class:`Documented`, from which the README's configuration
table is generated (``shoal config --markdown``, :mod:`shoal.cli.reference`)."""

from __future__ import annotations

import argparse
import os
import typing
import weakref
from dataclasses import dataclass
from typing import Any, TypeVar

from shoal.core.settings import EnvSettings, Shown, WorkerSettings

S = TypeVar("S", bound=EnvSettings)


@dataclass(frozen=True, slots=True)
class Documented:
    """What the configuration reference says of one flag: its variable, its default as
    shown, and its help without them (the declared default: never the environment's)."""

    variable: str
    default: str
    text: str


_DOCUMENTED: weakref.WeakKeyDictionary[argparse.Action, Documented] = weakref.WeakKeyDictionary()


def documented(action: argparse.Action) -> Documented | None:
    """How ``action`` was documented, if it is a flag with an environment twin."""
    return _DOCUMENTED.get(action)


def add(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    name: str,
    help: str,
    default: Any = None,
    *,
    shown: str | None = None,
    given_only: bool = False,
    **kwargs: Any,
) -> None:
    """Add ``--name`` whose default comes from ``SHOAL_NAME``, then from ``default``.

    ``shown`` is how the documentation states a default that is not a value (None: the
    value, or "none"). ``given_only`` leaves the name unset unless the flag is given: a
    global option repeated after a subcommand, whose default the top-level parser holds.
    """
    variable = WorkerSettings.env_name(name)
    stated = shown if shown is not None else _shown(default)
    hint = f"default: {stated}; " if shown is not None or default not in (None, False) else ""
    action = parser.add_argument(
        f"--{name.replace('_', '-')}",
        dest=name,
        default=argparse.SUPPRESS if given_only else os.environ.get(variable, default),
        help=f"{help} [{hint}env: {variable}]",
        **kwargs,
    )
    _DOCUMENTED[action] = Documented(variable, stated, help)


def _shown(default: object) -> str:
    if default in (None, ()):
        return "none"
    if isinstance(default, bool):
        return str(default).lower()
    return ",".join(default) if isinstance(default, tuple) else str(default)


def add_connection(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "backend_url",
        "where tasks live: sqlite:///file.db (default sqlite:///shoal.db), postgresql://... "
        "(TLS: ?sslmode=verify-full&sslrootcert=ca.crt), redis://... or rediss://... (TLS: "
        "?ssl_ca_certs=ca.crt), memory://",
    )
    add(
        parser,
        "app",
        "the app as module:attribute, to take its backend URL and tasks",
        metavar="MODULE:ATTR",
    )


def add_settings(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, settings: type[EnvSettings]
) -> None:
    """One flag per field of ``settings``, its help the field's docstring, its default and
    its variable. Flags default to None: :meth:`EnvSettings.from_env` fills in the rest."""
    for name, spec in settings.model_fields.items():
        shown = next((m.text for m in spec.metadata if isinstance(m, Shown)), None)
        shown = _shown(spec.default) if shown is None else shown
        kind: dict[str, Any] = {}
        if spec.annotation is bool:
            kind = {"action": "store_const", "const": True}
        elif typing.get_origin(spec.annotation) is tuple:
            kind = {"action": "append"}  # repeatable, and each may be comma separated
        help = " ".join((spec.description or "").split())
        action = parser.add_argument(
            settings.flag_name(name),
            dest=name,
            default=None,
            help=f"{help} [default: {shown}; env: {settings.env_name(name)}]",
            **kind,
        )
        _DOCUMENTED[action] = Documented(settings.env_name(name), shown, help)


def add_worker_settings(parser: argparse.ArgumentParser) -> None:
    add_settings(parser.add_argument_group("worker settings"), WorkerSettings)


def settings_from(arguments: argparse.Namespace, settings: type[S]) -> S:
    """Flags given on the command line, then the environment, then defaults."""
    return settings.from_env(**{name: getattr(arguments, name) for name in settings.model_fields})


def worker_settings(arguments: argparse.Namespace) -> WorkerSettings:
    return settings_from(arguments, WorkerSettings)
