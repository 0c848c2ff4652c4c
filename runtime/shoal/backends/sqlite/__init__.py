"""``sqlite:///path``: the embedded default, one file and no server (see :mod:`.backend`)."""

from shoal.backends.sqlite.backend import SQLiteBackend, from_url

__all__ = ["SQLiteBackend", "from_url"]
