"""Times and durations as people type them on the command line.

A duration is a number with a unit (``90s``, ``30m``, ``12h``, ``7d``, ``2w``; a bare number
is seconds); a time is an ISO 8601 date or datetime (UTC unless it says otherwise) or a
duration before now (``--since 2h``: two hours ago). Pure: ``now`` is passed in.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from shoal.core.errors import ConfigurationError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")


def duration(flag: str, text: str) -> timedelta:
    """``text`` as a duration, or an error naming ``flag`` and what it accepts."""
    found = _DURATION.fullmatch(text.strip().lower())
    if found is None:
        raise ConfigurationError(
            f"{flag} must be a duration such as 90s, 30m, 12h, 7d or 2w, not {text!r}"
        )
    return timedelta(seconds=float(found[1]) * _UNITS[found[2] or "s"])


def moment(flag: str, text: str, now: datetime) -> datetime:
    """``text`` as an aware datetime: ISO 8601, or a duration before ``now``."""
    if _DURATION.fullmatch(text.strip().lower()):
        return now - duration(flag, text)
    try:
        at = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigurationError(
            f"{flag} must be an ISO 8601 time (2026-12-01 or 2026-12-01T08:00:00+01:00) "
            f"or a duration before now (2h, 7d), not {text!r}"
        ) from None
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)
