"""``postgresql://``: tasks in PostgreSQL through asyncpg (see :mod:`.backend`)."""

from shoal.backends.postgres.backend import PostgresBackend, from_url
from shoal.backends.postgres.connect import PostgresSettings

__all__ = ["PostgresBackend", "PostgresSettings", "from_url"]
