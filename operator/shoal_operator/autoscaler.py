"""Depth-driven autoscaling: one stats query per backend per interval, for every pool on it.

Pools and queues register here from the kopf handlers. For each distinct backend URL one
:class:`BackendWatch` runs: it measures all the backend's queues in one round trip on a
jittered timer, and also right after a wake-up hint (LISTEN/NOTIFY, Redis pub/sub), so a
pool at zero starts within a second of the first committed push. Polling stays the source
of truth: a hint only brings the next measurement forward. Database load therefore grows
with the number of backends, not with the number of pools.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import random
import time
from collections.abc import Awaitable
from typing import Any

from shoal.backends import Backend, open_backend
from shoal.core.errors import ShoalError
from shoal.core.models import QueueStats
from shoal.core.urls import redact
from shoal.core.waiting import first_of
from shoal_operator import metrics
from shoal_operator.conditions import now_iso, set_condition
from shoal_operator.kube import Kube
from shoal_operator.rendering import POOL_LABEL, deployment_name
from shoal_operator.scaling import Demand, decide, deletion_costs
from shoal_operator.state import Pool, QueueEntry, StatusWriter

logger = logging.getLogger("shoal_operator.autoscaler")

_MIN_GAP = 0.2
"""Seconds between two measurements of one backend, however many hints arrive."""
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"


class Autoscaler:
    """The registry of pools and queues, and one watch per backend."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self.status = StatusWriter(kube)
        self.pools: dict[tuple[str, str], Pool] = {}
        self.queues: dict[tuple[str, str], QueueEntry] = {}
        self.watches: dict[str, BackendWatch] = {}

    def register_queue(self, entry: QueueEntry) -> None:
        self.queues[(entry.spec.namespace, entry.spec.name)] = entry
        self._rewatch()

    def unregister_queue(self, namespace: str, name: str) -> None:
        self.queues.pop((namespace, name), None)
        self._rewatch()

    def register_pool(self, pool: Pool) -> None:
        previous = self.pools.get(pool.key)
        if previous is not None:  # keep what the policy has learnt
            pool.history, pool.ready = previous.history, previous.ready
            pool.crashes = previous.crashes
            pool.last_scale_time = previous.last_scale_time
            pool.last_scale_reason = previous.last_scale_reason
        self.pools[pool.key] = pool
        self._rewatch()
        self.watches[pool.url].wake()
        self.watches[pool.url].idle_changed()

    def unregister_pool(self, namespace: str, name: str) -> None:
        self.pools.pop((namespace, name), None)
        self.status.forget("workerpools", namespace, name)
        self._rewatch()

    async def set_pool_condition(
        self,
        pool: Pool,
        type_: str,
        ok: bool,
        reason: str,
        message: str,
        event_type: str | None = None,
    ) -> None:
        """Set a condition; post an Event when ``event_type`` is given and it flips."""
        before = [dict(c) for c in pool.conditions]
        pool.conditions = set_condition(
            pool.conditions, type_, ok, reason, message, pool.generation
        )
        flipped = [c.get("status") for c in before if c.get("type") == type_] != [
            "True" if ok else "False"
        ]
        if event_type and flipped:
            await self.kube.event(pool.reference, "WorkerPool", reason, message, event_type)
        await self.status.write("workerpools", pool.spec.namespace, pool.spec.name, pool.status())

    async def observe_pod(
        self, namespace: str, pool_name: str, pod: str, crash: str | None
    ) -> None:
        """Follow worker pods: a worker that keeps exiting (a wrong app path, a bad
        password, an import error) turns the pool's WorkersHealthy condition False."""
        pool = self.pools.get((namespace, pool_name))
        if pool is None:
            return
        if crash is None:
            pool.crashes.pop(pod, None)
        else:
            pool.crashes[pod] = crash
        if pool.crashes:
            name, crash = sorted(pool.crashes.items())[0]
            await self.set_pool_condition(
                pool,
                "WorkersHealthy",
                False,
                "WorkerCrashing",
                f"pod {name}: {crash}. Fix the cause (the WorkerPool's app, image or the "
                "Secret's URL); the pods restart on their own",
                event_type="Warning",
            )
        else:
            await self.set_pool_condition(
                pool,
                "WorkersHealthy",
                True,
                "WorkersRunning",
                "no worker is crashing",
                event_type="Normal",
            )

    async def scale_by_hand(self, pool: Pool, replicas: int) -> None:
        """``kubectl scale`` on the pool: applied now, within the pool's bounds."""
        bounds = pool.spec.autoscaling
        replicas = min(max(replicas, bounds.min_replicas), bounds.max_replicas)
        await self.kube.scale_deployment(pool.spec.namespace, deployment_name(pool.spec), replicas)
        reason = f"kubectl scale to {replicas}"
        if not pool.spec.paused:
            reason += "; the autoscaler decides again at its next measurement"
        if 0 in (pool.replicas, replicas):
            self.watches[pool.url].idle_changed()
        pool.replicas, pool.last_scale_time, pool.last_scale_reason = replicas, now_iso(), reason
        await self.kube.event(pool.reference, "WorkerPool", "ScaledByHand", reason)
        await self.status.write("workerpools", *pool.key, pool.status())

    async def observe_deployment(
        self, namespace: str, pool_name: str, replicas: int | None, ready: int
    ) -> None:
        """Follow the Deployment's readiness; put back replicas edited by hand."""
        pool = self.pools.get((namespace, pool_name))
        if pool is None:
            return
        if pool.ready != ready:
            pool.ready = ready
            metrics.POOL_READY.labels(namespace, pool_name).set(ready)
            await self.status.write("workerpools", namespace, pool_name, pool.status())
        if replicas is not None and replicas != pool.replicas and not pool.spec.paused:
            await self.kube.scale_deployment(namespace, deployment_name(pool.spec), pool.replicas)
            await self.kube.event(
                pool.reference,
                "WorkerPool",
                "ReplicasRestored",
                f"the Deployment was scaled to {replicas} by hand; the "
                f"autoscaler owns it and put back {pool.replicas} (annotate "
                "the pool shoal.dev/paused=true to scale by hand)",
            )

    def _rewatch(self) -> None:
        """One watch per backend URL in use; stop the ones nobody uses any more."""
        urls = {p.url for p in self.pools.values()} | {q.url for q in self.queues.values()}
        for url in urls - self.watches.keys():
            self.watches[url] = BackendWatch(self, url)
        for url in self.watches.keys() - urls:
            self.watches.pop(url).stop()

    async def stop(self) -> None:
        for watch in list(self.watches.values()):
            watch.stop()
        await asyncio.gather(*(w.finished() for w in self.watches.values()))


class BackendWatch:
    """Measures every queue of one backend, on a timer and on wake-up hints."""

    def __init__(self, owner: Autoscaler, url: str) -> None:
        self.owner = owner
        self.url = url
        self.safe_url = redact(url)
        self.backend: Backend = open_backend(url)
        self._hint = asyncio.Event()
        self._idle_changed = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._measure_forever()),
            asyncio.create_task(self._listen_forever()),
        ]

    def wake(self) -> None:
        self._hint.set()

    def idle_changed(self) -> None:
        """A pool went to or left zero replicas: listen on the new set of queues."""
        self._idle_changed.set()

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def finished(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(ShoalError):
            await self.backend.close()

    def _pools(self) -> list[Pool]:
        return [p for p in self.owner.pools.values() if p.url == self.url]

    def _queue_names(self) -> list[str]:
        names = {q.spec.queue_name for q in self.owner.queues.values() if q.url == self.url}
        for pool in self._pools():
            names.update(pool.queue_names)
        return sorted(names)

    def _interval(self) -> float:
        intervals = [q.spec.stats_interval for q in self.owner.queues.values() if q.url == self.url]
        return min(intervals, default=5.0)

    async def _measure_forever(self) -> None:
        while True:
            # Jitter spreads the watches of many backends (and operators) over time.
            timeout = self._interval() * random.uniform(0.9, 1.1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hint.wait(), timeout)
            signalled = time.monotonic()
            self._hint.clear()
            try:
                await self.measure(signalled)
            except Exception:
                logger.exception("measuring %s failed", self.safe_url)
            await asyncio.sleep(_MIN_GAP)

    def _idle_queue_names(self) -> list[str]:
        """Queues of pools at zero replicas: the only ones whose wake-ups matter. A running
        pool is served by the timer, and its busy queue would wake us all the time."""
        names = set()
        for pool in self._pools():
            if pool.replicas == 0 and not pool.spec.paused:
                names.update(pool.queue_names)
        return sorted(names)

    async def _listen_forever(self) -> None:
        """Turn wake-ups on idle pools' queues into measurements at once (a hint, never the
        truth: the measurement decides). One long wait per backend, restarted when the set
        of idle pools changes."""
        failures = 0
        while True:
            self._idle_changed.clear()
            names = self._idle_queue_names()
            waiters: list[Awaitable[Any]] = [self._idle_changed.wait()]
            if names:
                waiters.append(self._wait_for_work(names))
            done = await first_of(*waiters)
            woken = [w for w in done if w.exception() is None and w.result()]
            errors = [w.exception() for w in done if w.exception()]
            if woken:
                self._hint.set()
                await asyncio.sleep(_MIN_GAP)  # let the measurement move the pool first
            if errors:
                failures += 1
                logger.debug("wake-up listener on %s: %s", self.safe_url, errors[0])
                await asyncio.sleep(min(30.0, 0.5 * 2**failures))
            else:
                failures = 0

    async def _wait_for_work(self, names: list[str]) -> bool:
        """True when the backend signalled work (before the long timeout ran out)."""
        timeout = 60.0
        await self.backend.open()
        started = time.monotonic()
        await self.backend.wait_for_work(names, timeout)
        return time.monotonic() - started < timeout * 0.99

    async def measure(self, signalled: float) -> None:
        names = self._queue_names()
        if not names:
            return
        try:
            await self.backend.open()
            stats = await self.backend.stats(names)
        except ShoalError as error:
            await self._unreachable(error)
            return
        finally:
            metrics.STATS_QUERIES.labels(self.safe_url).inc()
        await self._report_queues(stats)
        for pool in self._pools():
            await self._scale(pool, stats, signalled)

    async def _unreachable(self, error: ShoalError) -> None:
        message = (
            f"cannot read queue depth from {self.safe_url}: {error}. Replicas are held "
            "until the backend answers; check the URL in the Secret and that the "
            "server is up"
        )
        for entry in [q for q in self.owner.queues.values() if q.url == self.url]:
            await self._queue_condition(entry, False, "BackendUnreachable", message)
        for pool in self._pools():
            await self.owner.set_pool_condition(
                pool, "ScalingActive", False, "BackendUnreachable", message, event_type="Warning"
            )

    async def _report_queues(self, stats: dict[str, QueueStats]) -> None:
        for entry in [q for q in self.owner.queues.values() if q.url == self.url]:
            figures = stats[entry.spec.queue_name]
            namespace, name = entry.spec.namespace, entry.spec.name
            metrics.QUEUE_DEPTH.labels(namespace, name).set(figures.ready)
            metrics.QUEUE_OLDEST.labels(namespace, name).set(figures.oldest_ready_age or 0)
            entry.conditions = set_condition(
                entry.conditions,
                "Reachable",
                True,
                "StatsRead",
                f"measured on {self.safe_url}",
                None,
            )
            await self.owner.status.write(
                "queues",
                namespace,
                name,
                {
                    "ready": figures.ready,
                    "scheduled": figures.scheduled,
                    "running": figures.running,
                    "dead": figures.dead,
                    "oldestReadySince": _since(figures.oldest_ready_age),
                    "observedTime": entry.observed_time(figures),
                    "conditions": entry.conditions,
                },
            )

    async def _queue_condition(
        self, entry: QueueEntry, ok: bool, reason: str, message: str
    ) -> None:
        entry.conditions = set_condition(entry.conditions, "Reachable", ok, reason, message, None)
        await self.owner.status.write(
            "queues", entry.spec.namespace, entry.spec.name, {"conditions": entry.conditions}
        )

    async def _scale(self, pool: Pool, stats: dict[str, QueueStats], signalled: float) -> None:
        demand = Demand(
            ready=sum(stats[q].ready for q in pool.queue_names),
            in_flight=sum(stats[q].running for q in pool.queue_names),
        )
        pool.depth, pool.in_flight = demand.ready, demand.in_flight
        if pool.spec.paused:
            await self.owner.set_pool_condition(
                pool,
                "ScalingActive",
                False,
                "Paused",
                "the shoal.dev/paused annotation holds the replicas",
            )
            return
        decision = decide(pool.spec.autoscaling, pool.replicas, demand, time.time(), pool.history)
        pool.desired = decision.replicas
        metrics.POOL_DESIRED.labels(*pool.key).set(decision.replicas)
        if decision.changes(pool.replicas):
            if decision.replicas < pool.replicas:
                await self._prefer_idle_pods(pool)
            await self.owner.kube.scale_deployment(
                pool.spec.namespace, deployment_name(pool.spec), decision.replicas
            )
            metrics.DECISION_LATENCY.observe(time.monotonic() - signalled)
            direction = "up" if decision.replicas > pool.replicas else "down"
            metrics.SCALE_EVENTS.labels(*pool.key, direction).inc()
            if 0 in (pool.replicas, decision.replicas):
                self._idle_changed.set()
            pool.replicas = decision.replicas
            pool.last_scale_time, pool.last_scale_reason = now_iso(), decision.reason
            await self.owner.kube.event(
                pool.reference, "WorkerPool", f"Scaled{direction.capitalize()}", decision.reason
            )
            logger.info("%s/%s: %s", *pool.key, decision.reason)
        await self.owner.set_pool_condition(
            pool, "ScalingActive", True, "DepthRead", decision.reason
        )

    async def _prefer_idle_pods(self, pool: Pool) -> None:
        """Mark each pod with its worker's tasks in flight, so idle pods are deleted first.

        A deletion cost is an optimisation, never a must: a failure here is logged and the
        scale-down goes ahead.
        """
        try:
            workers = await self.backend.workers()
            pods = await self.owner.kube.pods(pool.spec.namespace, f"{POOL_LABEL}={pool.spec.name}")
            in_flight: dict[str, int] = {}
            for worker in workers:
                in_flight[worker.host] = in_flight.get(worker.host, 0) + worker.in_flight
            current = {
                pod.metadata.name: (pod.metadata.annotations or {}).get(DELETION_COST)
                for pod in pods
            }
            for name, cost in deletion_costs(in_flight, list(current)).items():
                if current[name] != str(cost):
                    await self.owner.kube.annotate_pod(
                        pool.spec.namespace, name, {DELETION_COST: str(cost)}
                    )
        except Exception as error:
            logger.warning("no pod deletion costs for %s/%s: %s", *pool.key, error)


def _since(age: float | None) -> str | None:
    """When the oldest ready task became due, to the second: unlike its age, this stays the
    same from one measurement to the next, so a waiting queue costs no status writes."""
    if age is None:
        return None
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=age)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
