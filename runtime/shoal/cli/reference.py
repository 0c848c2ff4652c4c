"""The configuration reference, generated from the parser so that it cannot drift.

``shoal config --markdown`` prints the table of every ``shoal worker`` flag with its
environment twin, default and meaning, made from the flags themselves (each recorded as
:class:`~shoal.cli.options.Documented` when it was added, its default the declared one,
never the environment's); the README holds that output, and a unit test compares the two.
``shoal config`` alone prints what this environment makes of the worker's settings.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

from shoal.core.settings import Shown, WorkerSettings

from . import options

HEADER = "| flag | environment | default | what it is for |\n| --- | --- | --- | --- |"
"""The table's first two lines: where the README's copy of it starts."""

_GLOBAL = " (any command; before or after it)"


def subparsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every parser below ``parser``, depth first (``jobs`` and then ``jobs list``)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield sub
                yield from subparsers(sub)


def command(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser:
    """The parser of ``shoal <name>``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            chosen: argparse.ArgumentParser = action.choices[name]
            return chosen
    raise KeyError(name)


def markdown_table(parser: argparse.ArgumentParser) -> str:
    """The reference table of ``shoal worker``'s flags, in the order ``--help`` lists them."""
    rows = [HEADER]
    for action in command(parser, "worker")._actions:
        found = options.documented(action)
        if found is None:
            continue
        text = found.text + (_GLOBAL if action.default is argparse.SUPPRESS else "")
        cells = (f"`{action.option_strings[0]}`", f"`{found.variable}`", found.default, text)
        rows.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(rows)


def resolved() -> list[tuple[str, str, str]]:
    """Each worker setting as (flag, value, where it came from) in this environment."""
    values = WorkerSettings.from_env()
    rows = []
    for name, spec in WorkerSettings.model_fields.items():
        source = next((v for v in WorkerSettings.variables(name) if os.environ.get(v)), "default")
        value = getattr(values, name)
        if value in (None, ()):  # unset: as the reference states it ("automatic", "none")
            shown = next((m.text for m in spec.metadata if isinstance(m, Shown)), "none")
        elif isinstance(value, bool):
            shown = str(value).lower()
        else:
            shown = ",".join(value) if isinstance(value, tuple) else str(value)
        rows.append((WorkerSettings.flag_name(name), shown, source))
    return rows


async def config(arguments: argparse.Namespace) -> int:
    # Imported here: the parser module imports this one to build the `config` command.
    from . import build_parser

    if arguments.markdown:
        print(markdown_table(build_parser()))
        return 0
    rows = resolved()
    widths = [max(len(row[i]) for row in rows) for i in range(2)]
    for flag, value, source in rows:
        print(f"{flag:<{widths[0]}}  {value:<{widths[1]}}  ({source})")
    return 0
