"""``memory://``: the contract in one process's memory, for tests and examples."""

from shoal.backends.memory.backend import MemoryBackend, from_url

__all__ = ["MemoryBackend", "from_url"]
