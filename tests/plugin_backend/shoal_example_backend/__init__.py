"""``example:///path/tasks.json``: a shoal backend written outside shoal, in one JSON file.

Every primitive is one transaction: take an exclusive ``flock`` on ``<file>.lock``, read the
file, change the state, write it back whole (a temporary file renamed over it). That makes
claims atomic across threads and processes, which is the contract's hardest rule; the rest
is bookkeeping on two dicts, ``tasks`` and ``workers``. The file is read and written in a
thread, so a busy lock never blocks the event loop. Wake-ups reach waiters in this process
at once; other processes find new work when they poll. Fine for tests and small tools, slow
for anything else: it rewrites the whole file on every change.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from shoal.core.errors import ConfigurationError
from shoal_example_backend.backend import JsonFileBackend


def from_url(url: str) -> JsonFileBackend:
    """The entry point: ``example:///relative.json`` or ``example:////absolute.json``."""
    path = urlsplit(url).path[1:]  # as sqlite:// URLs: a fourth slash makes it absolute
    if not path.strip("/"):
        raise ConfigurationError(f"{url!r} names no file: use example:///path/tasks.json")
    return JsonFileBackend(url, Path(path))


__all__ = ["JsonFileBackend", "from_url"]
