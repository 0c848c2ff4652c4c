"""SQL kept as SQL: an SQL backend's queries and numbered migrations, loaded once.

Each SQL backend's package holds ``queries.sql``, named sections each introduced by a
``-- name: <name>`` line, and ``migrations/NNNN_<what>.sql``, applied in order and recorded
so that a database is always at a known version.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

_SECTION = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


@functools.cache
def queries(package: str) -> dict[str, str]:
    """The named queries in ``package``'s ``queries.sql``."""
    text = resources.files(package).joinpath("queries.sql").read_text("utf-8")
    parts = _SECTION.split(text)
    return {name: body.strip() for name, body in zip(parts[1::2], parts[2::2], strict=True)}


@functools.cache
def migrations(package: str) -> tuple[Migration, ...]:
    """The migrations in ``package``'s ``migrations`` folder, in the order they must run."""
    folder = resources.files(package).joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = re.fullmatch(r"(\d{4})_([a-z0-9_]+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    return tuple(sorted(found, key=lambda m: m.version))
