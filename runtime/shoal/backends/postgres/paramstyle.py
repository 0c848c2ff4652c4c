"""The one place where ``queries.sql``'s placeholders become another driver's.

The statements are written for asyncpg (``$1``, ``$2``, ...: PostgreSQL's own numbering).
psycopg, and Django and SQLAlchemy over it, take ``%s`` placeholders in the order of their
arguments, with a literal ``%`` doubled; SQLAlchemy over asyncpg takes ``$n`` as written.
Each statement is translated once per style and the translation cached, so a push pays a
dictionary look-up, not a scan of its SQL.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any, Literal

from shoal.core.errors import ConfigurationError

Style = Literal["numeric_dollar", "format"]
"""``$n`` (asyncpg) or ``%s`` (psycopg), in the names of PEP 249's ``paramstyle``."""

_PLACEHOLDER = re.compile(r"\$(\d+)")

_STYLES: dict[str, Style] = {
    "numeric_dollar": "numeric_dollar",
    "format": "format",
    # psycopg's own paramstyle: it takes "%s" with a sequence as well as "%(name)s".
    "pyformat": "format",
}


def style_of(paramstyle: str, driver: str) -> Style:
    """The style for a DB-API ``paramstyle``, or a ConfigurationError naming ``driver``."""
    try:
        return _STYLES[paramstyle]
    except KeyError:
        raise ConfigurationError(
            f"{driver} takes {paramstyle!r} placeholders; shoal enqueues through drivers "
            f"taking one of {', '.join(sorted(_STYLES))} (psycopg 3 or asyncpg)"
        ) from None


def translate(query: str, args: Sequence[Any], style: Style) -> tuple[str, tuple[Any, ...]]:
    """``query`` and ``args`` for a driver of ``style``."""
    text, order = _translated(query, style)
    if order is None:
        return text, tuple(args)
    return text, tuple(args[number - 1] for number in order)


@functools.cache
def _translated(query: str, style: Style) -> tuple[str, tuple[int, ...] | None]:
    """The query in ``style`` and, for positional ``%s``, which ``$n`` each one stands for
    (a statement may name its arguments out of order, or twice)."""
    if style == "numeric_dollar":
        return query, None
    order: list[int] = []

    def positional(match: re.Match[str]) -> str:
        order.append(int(match[1]))
        return "%s"

    return _PLACEHOLDER.sub(positional, query.replace("%", "%%")), tuple(order)
