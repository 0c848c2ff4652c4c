"""The pools and queues the operator knows, by ``(namespace, name)`` and by backend URL.

Handlers add and remove entries; each backend's watch reads the ones on its URL. A pool
added again (its spec changed) keeps what was learnt about it: the scaling history, ready
replicas, crashing pods and the last scale.
"""

from __future__ import annotations

from shoal_operator.state import Pool, QueueEntry

Key = tuple[str, str]
"""``(namespace, name)`` of a custom resource."""


class Registry:
    def __init__(self) -> None:
        self.pools: dict[Key, Pool] = {}
        self.queues: dict[Key, QueueEntry] = {}

    def add_queue(self, entry: QueueEntry) -> None:
        self.queues[entry.key] = entry

    def remove_queue(self, key: Key) -> None:
        self.queues.pop(key, None)

    def add_pool(self, pool: Pool) -> None:
        previous = self.pools.get(pool.key)
        if previous is not None:
            pool.learn_from(previous)
        self.pools[pool.key] = pool

    def remove_pool(self, key: Key) -> None:
        self.pools.pop(key, None)

    def urls(self) -> set[str]:
        """Every backend URL in use, by a pool or a queue."""
        return {p.url for p in self.pools.values()} | {q.url for q in self.queues.values()}

    def pools_on(self, url: str) -> list[Pool]:
        return [pool for pool in self.pools.values() if pool.url == url]

    def queues_on(self, url: str) -> list[QueueEntry]:
        return [entry for entry in self.queues.values() if entry.url == url]

    def pools_serving(self, namespace: str, queue: str) -> list[Pool]:
        """The pools whose spec names the Queue ``namespace/queue``."""
        return [
            pool
            for pool in self.pools.values()
            if pool.spec.namespace == namespace and queue in pool.spec.queue_refs
        ]
