"""One watch per backend URL: measures every queue on it in one round trip, on a jittered
timer and right after a wake-up hint, and scales the pools on it from what it measured.

A hint (LISTEN/NOTIFY, Redis pub/sub) on an idle pool's queue only brings the next
measurement forward, so a pool at zero starts within a second of the first committed push;
polling stays the source of truth. Database load grows with backends, not with pools.
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
from shoal.core.backoff import Backoff
from shoal.core.errors import ShoalError
from shoal.core.models import QueueStats
from shoal.core.urls import redact
from shoal.core.waiting import first_of
from shoal_operator import metrics
from shoal_operator.conditions import now_iso, set_condition
from shoal_operator.kube import Kube
from shoal_operator.registry import Registry
from shoal_operator.rendering import POOL_LABEL, deployment_name
from shoal_operator.scaling import Demand, decide, deletion_costs
from shoal_operator.spec import QueueSpec
from shoal_operator.state import Pool, QueueEntry, QueueStatus
from shoal_operator.status import StatusWriter

logger = logging.getLogger("shoal_operator.watch")

_MIN_GAP = 0.2
"""Seconds between the starts of two measurements of one backend, however many hints
arrive."""
_LISTEN_BACKOFF = Backoff(base=1.0, cap=30.0)
"""Between attempts to wait on a backend's wake-ups that failed (the timer goes on)."""
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_QUEUE_DEFAULT_INTERVAL: int = QueueSpec.model_fields["stats_interval"].default
"""Until a Queue on the backend says otherwise (pools register before their queues)."""


class BackendWatch:
    """Measures every queue of one backend, on a timer and on wake-up hints."""

    def __init__(self, url: str, registry: Registry, status: StatusWriter, kube: Kube) -> None:
        self.url = url
        self.safe_url = redact(url)
        self.registry, self.status, self.kube = registry, status, kube
        self.backend: Backend = open_backend(url)
        self._hint = asyncio.Event()
        self._idle_changed = asyncio.Event()
        self._answered = asyncio.Event()
        """Set by a measurement that read the backend: a listener in back-off waits again."""
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

    def _queue_names(self) -> list[str]:
        names = {q.spec.queue_name for q in self.registry.queues_on(self.url)}
        for pool in self.registry.pools_on(self.url):
            names.update(pool.queue_names)
        return sorted(names)

    def _interval(self) -> float:
        intervals = [q.spec.stats_interval for q in self.registry.queues_on(self.url)]
        return min(intervals, default=_QUEUE_DEFAULT_INTERVAL)

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
            # The gap counts from the measurement's start: one that took longer (writes of
            # many pools' statuses) delays a hint that came meanwhile no further.
            await asyncio.sleep(max(0.0, _MIN_GAP - (time.monotonic() - signalled)))

    def _idle_queue_names(self) -> list[str]:
        """Queues of pools at zero replicas: the only ones whose wake-ups matter. A running
        pool is served by the timer, and its busy queue would wake us all the time."""
        names = set()
        for pool in self.registry.pools_on(self.url):
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
                # Armed again at once: a push landing while no wait is armed is heard only
                # by the wait's next look at the store, a poll interval later (1 s by
                # default; it was the 1.2 s tail of waking from zero). Measurements keep
                # their own pace (_MIN_GAP), and the pool woken leaves the idle set as soon
                # as it is scaled.
                self._hint.set()
            if errors:
                failures += 1
                logger.debug("wake-up listener on %s: %s", self.safe_url, errors[0])
                # Cut short once a measurement reads the backend again: a backend that was
                # down for a while (a Redis applied with its Queue, not up yet) would keep
                # the listener away for up to 30 s, and a push meanwhile waited for the timer.
                self._answered.clear()
                await first_of(
                    asyncio.sleep(_LISTEN_BACKOFF.delay(failures)), self._answered.wait()
                )
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
        self._answered.set()
        # Pools first: a scale waits for no status write of the queues.
        for pool in self.registry.pools_on(self.url):
            await self._scale(pool, stats, signalled)
        for entry in self.registry.queues_on(self.url):
            await self._report_queue(entry, stats[entry.spec.queue_name])

    async def _unreachable(self, error: ShoalError) -> None:
        message = (
            f"cannot read queue depth from {self.safe_url}: {error}. Replicas are held "
            "until the backend answers; check the URL in the Secret and that the "
            "server is up"
        )
        for entry in self.registry.queues_on(self.url):
            await self.status.queue_reachable(entry, False, "BackendUnreachable", message)
        for pool in self.registry.pools_on(self.url):
            await self.status.pool_condition(
                pool, "ScalingActive", False, "BackendUnreachable", message, event_type="Warning"
            )

    async def _report_queue(self, entry: QueueEntry, figures: QueueStats) -> None:
        namespace, name = entry.key
        metrics.QUEUE_DEPTH.labels(namespace, name).set(figures.ready)
        metrics.QUEUE_OLDEST.labels(namespace, name).set(figures.oldest_ready_age or 0)
        entry.conditions = set_condition(
            entry.conditions, "Reachable", True, "StatsRead", f"measured on {self.safe_url}", None
        )
        status = QueueStatus(
            ready=figures.ready,
            scheduled=figures.scheduled,
            running=figures.running,
            dead=figures.dead,
            oldestReadySince=_since(figures.oldest_ready_age),
            nextDue=_due(figures.next_due_in),
            observedTime=entry.observed_time(figures),
            conditions=entry.conditions,
        )
        await self.status.write(entry.reference, status)

    async def _scale(self, pool: Pool, stats: dict[str, QueueStats], signalled: float) -> None:
        upcoming = [stats[q].next_due_in for q in pool.queue_names]
        demand = Demand(
            ready=sum(stats[q].ready for q in pool.queue_names),
            in_flight=sum(stats[q].running for q in pool.queue_names),
            held_back=sum(stats[q].held_back for q in pool.queue_names),
            next_due_in=min((s for s in upcoming if s is not None), default=None),
        )
        pool.depth, pool.in_flight = demand.ready, demand.in_flight
        if pool.spec.paused:
            await self.status.pool_condition(
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
            # Known before the patch is sent: the Deployment's watch event for it may be
            # handled before the patch returns, and must not look like a hand edit (it was
            # put back, then re-applied: two needless generations, found by the HA test).
            previous, pool.replicas = pool.replicas, decision.replicas
            try:
                await self.kube.scale_deployment(
                    pool.spec.namespace, deployment_name(pool.spec), decision.replicas
                )
            except BaseException:
                pool.replicas = previous
                raise
            metrics.DECISION_LATENCY.observe(time.monotonic() - signalled)
            direction = "up" if decision.replicas > previous else "down"
            metrics.SCALE_EVENTS.labels(*pool.key, direction).inc()
            if 0 in (previous, decision.replicas):
                self._idle_changed.set()
            pool.last_scale_time, pool.last_scale_reason = now_iso(), decision.reason
            await self.kube.event(
                pool.reference, f"Scaled{direction.capitalize()}", decision.reason
            )
            logger.info("%s/%s: %s", *pool.key, decision.reason)
        await self.status.pool_condition(pool, "ScalingActive", True, "DepthRead", decision.reason)

    async def _prefer_idle_pods(self, pool: Pool) -> None:
        """Mark each pod with its worker's tasks in flight, so idle pods are deleted first.

        A deletion cost is an optimisation, never a must: a failure here is logged and the
        scale-down goes ahead.
        """
        try:
            workers = await self.backend.workers()
            pods = await self.kube.pods(pool.spec.namespace, f"{POOL_LABEL}={pool.spec.name}")
            in_flight: dict[str, int] = {}
            for worker in workers:
                in_flight[worker.host] = in_flight.get(worker.host, 0) + worker.in_flight
            current = {pod.name: pod.annotations.get(DELETION_COST) for pod in pods}
            for name, cost in deletion_costs(in_flight, list(current)).items():
                if current[name] != str(cost):
                    await self.kube.annotate_pod(
                        pool.spec.namespace, name, {DELETION_COST: str(cost)}
                    )
        except Exception as error:
            logger.warning("no pod deletion costs for %s/%s: %s", *pool.key, error)


def _due(seconds: float | None) -> str | None:
    """When the first scheduled task comes due, to the second (stable between measurements)."""
    return None if seconds is None else _since(-seconds)


def _since(age: float | None) -> str | None:
    """When the oldest ready task became due, to the second: unlike its age, this stays the
    same from one measurement to the next, so a waiting queue costs no status writes."""
    if age is None:
        return None
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=age)
    return moment.replace(microsecond=0).isoformat().replace("+00:00", "Z")
