"""The autoscaler: one :class:`~shoal_operator.watch.BackendWatch` per backend URL in use,
kept in step with the registry, and the replica changes that come from outside the policy
(``kubectl scale`` on a pool, a hand edit of its Deployment)."""

from __future__ import annotations

import asyncio
import time

from shoal_operator import metrics
from shoal_operator.conditions import now_iso
from shoal_operator.kube import Kube
from shoal_operator.registry import Key, Registry
from shoal_operator.rendering import deployment_name
from shoal_operator.scaling import observe_ready
from shoal_operator.state import Pool, QueueEntry
from shoal_operator.status import StatusWriter
from shoal_operator.watch import BackendWatch


class Autoscaler:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.registry = Registry()
        self.status = StatusWriter(kube)
        self.watches: dict[str, BackendWatch] = {}

    def register_queue(self, entry: QueueEntry) -> None:
        self.registry.add_queue(entry)
        self._rewatch()

    def unregister_queue(self, key: Key) -> None:
        self.registry.remove_queue(key)
        self._rewatch()

    def register_pool(self, pool: Pool) -> None:
        self.registry.add_pool(pool)
        self._rewatch()
        self.watches[pool.url].wake()
        self.watches[pool.url].idle_changed()

    def unregister_pool(self, key: Key) -> None:
        pool = self.registry.pools.get(key)
        if pool is not None:
            self.status.forget(pool.reference)
        self.registry.remove_pool(key)
        self._rewatch()

    async def scale_by_hand(self, pool: Pool, replicas: int) -> None:
        """``kubectl scale`` on the pool: applied now, within the pool's bounds."""
        bounds = pool.spec.autoscaling
        replicas = min(max(replicas, bounds.min_replicas), bounds.max_replicas)
        # Known before the patch, as in BackendWatch._scale: its watch event may come first.
        previous, pool.replicas = pool.replicas, replicas
        try:
            await self.kube.scale_deployment(
                pool.spec.namespace, deployment_name(pool.spec), replicas
            )
        except BaseException:
            pool.replicas = previous
            raise
        reason = f"kubectl scale to {replicas}"
        if not pool.spec.paused:
            reason += "; the autoscaler decides again at its next measurement"
        if 0 in (previous, replicas):
            self.watches[pool.url].idle_changed()
        pool.last_scale_time, pool.last_scale_reason = now_iso(), reason
        await self.kube.event(pool.reference, "ScaledByHand", reason)
        await self.status.write(pool.reference, pool.status())

    async def observe_deployment(self, pool: Pool, replicas: int | None, ready: int) -> None:
        """Follow the Deployment's readiness; put back replicas edited by hand."""
        observe_ready(pool.history, ready, time.time())
        if pool.ready != ready:
            pool.ready = ready
            metrics.POOL_READY.labels(*pool.key).set(ready)
            await self.status.write(pool.reference, pool.status())
        if replicas is not None and replicas != pool.replicas and not pool.spec.paused:
            await self.kube.scale_deployment(
                pool.spec.namespace, deployment_name(pool.spec), pool.replicas
            )
            await self.kube.event(
                pool.reference,
                "ReplicasRestored",
                f"the Deployment was scaled to {replicas} by hand; the "
                f"autoscaler owns it and put back {pool.replicas} (annotate "
                "the pool shoal.dev/paused=true to scale by hand)",
            )

    def _rewatch(self) -> None:
        """One watch per backend URL in use; stop the ones nobody uses any more."""
        urls = self.registry.urls()
        for url in urls - self.watches.keys():
            self.watches[url] = BackendWatch(url, self.registry, self.status, self.kube)
        for url in self.watches.keys() - urls:
            self.watches.pop(url).stop()

    async def stop(self) -> None:
        for watch in list(self.watches.values()):
            watch.stop()
        await asyncio.gather(*(w.finished() for w in self.watches.values()))
