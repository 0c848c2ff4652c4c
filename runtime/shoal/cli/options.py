"""Flags with environment twins: every flag reads ``SHOAL_<FLAG>`` when not given, and says
so in ``--help``. Settings flags are generated from an :class:`EnvSettings` class (the
worker's, the operator's), so the flag, the variable and the documentation are one thing."""

from __future__ import annotations

import argparse
import os
import typing
from typing import Any, TypeVar

from shoal.core.settings import EnvSettings, Shown, WorkerSettings

S = TypeVar("S", bound=EnvSettings)


def add(
    parser: argparse.ArgumentParser, name: str, help: str, default: Any = None, **kwargs: Any
) -> None:
    """Add ``--name`` whose default comes from ``SHOAL_NAME``, then from ``default``."""
    variable = WorkerSettings.env_name(name)
    shown = f"default: {default}; " if default not in (None, False) else ""
    parser.add_argument(
        f"--{name.replace('_', '-')}",
        dest=name,
        default=os.environ.get(variable, default),
        help=f"{help} [{shown}env: {variable}]",
        **kwargs,
    )


def add_connection(parser: argparse.ArgumentParser) -> None:
    add(
        parser,
        "backend_url",
        "where tasks live: sqlite:///file.db (default sqlite:///shoal.db), postgresql://..., "
        "redis://..., memory://",
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
        if shown is None:
            default = spec.default
            shown = ",".join(default) if isinstance(default, tuple) else str(default)
            shown = "none" if default in (None, ()) else shown
        kind: dict[str, Any] = {}
        if spec.annotation is bool:
            kind = {"action": "store_const", "const": True}
        elif typing.get_origin(spec.annotation) is tuple:
            kind = {"action": "append"}  # repeatable, and each may be comma separated
        help = " ".join((spec.description or "").split())
        parser.add_argument(
            settings.flag_name(name),
            dest=name,
            default=None,
            help=f"{help} [default: {shown}; env: {settings.env_name(name)}]",
            **kind,
        )


def add_worker_settings(parser: argparse.ArgumentParser) -> None:
    add_settings(parser.add_argument_group("worker settings"), WorkerSettings)


def settings_from(arguments: argparse.Namespace, settings: type[S]) -> S:
    """Flags given on the command line, then the environment, then defaults."""
    return settings.from_env(**{name: getattr(arguments, name) for name in settings.model_fields})


def worker_settings(arguments: argparse.Namespace) -> WorkerSettings:
    return settings_from(arguments, WorkerSettings)
