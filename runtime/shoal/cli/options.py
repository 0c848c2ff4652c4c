"""Flags with environment twins: every flag reads ``SHOAL_<FLAG>`` when not given, and says
so in ``--help``. Worker flags are generated from :class:`WorkerSettings`, so the flag, the
variable and the documentation are one thing."""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any

from shoal.core.settings import WorkerSettings, env_name, parse


def add(
    parser: argparse.ArgumentParser, name: str, help: str, default: Any = None, **kwargs: Any
) -> None:
    """Add ``--name`` whose default comes from ``SHOAL_NAME``, then from ``default``."""
    variable = env_name(name)
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


def add_worker_settings(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("worker settings")
    for spec in dataclasses.fields(WorkerSettings):
        default = spec.default
        shown = spec.metadata["shown"] or (
            ",".join(default) if isinstance(default, tuple) else default
        )
        group.add_argument(
            f"--{spec.name.replace('_', '-')}",
            dest=spec.name,
            default=None,
            help=f"{spec.metadata['help']} [default: {shown or 'none'}; "
            f"env: {env_name(spec.name)}]",
        )


def worker_settings(arguments: argparse.Namespace) -> WorkerSettings:
    """Flags given on the command line, then the environment, then defaults."""
    overrides = {}
    for spec in dataclasses.fields(WorkerSettings):
        raw = getattr(arguments, spec.name)
        if raw is not None:
            overrides[spec.name] = parse(spec.name, str(spec.type), raw)
    return WorkerSettings.from_env(**overrides)
