"""``redis://`` and ``rediss://``: tasks in Redis through redis-py (see :mod:`.backend`)."""

from shoal.backends.redis.backend import RedisBackend, from_url

__all__ = ["RedisBackend", "from_url"]
