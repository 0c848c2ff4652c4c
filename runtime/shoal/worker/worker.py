"""The worker: claim for free slots, run, record outcomes in batches, drain on stop (the drain
is :mod:`shoal.worker.draining`).

One loop drives everything: it starts claimed tasks, asks for more, records finished
attempts (in the background, see :mod:`shoal.worker.recorder`), heartbeats, reaps and waits.
Heartbeats ride on the loop on purpose: a worker whose loop is stuck stops renewing its
leases, and its tasks go to a healthy worker once they expire. Each backend call keeps its
own pace (:mod:`shoal.worker.pacing`), so a failing claim never delays a heartbeat; hooks
run off the loop (:mod:`shoal.worker.announcer`), and a watchdog reports a blocked loop
(:mod:`shoal.worker.watchdog`).

Claims run in the background too, so the loop keeps starting and recording while the
backend picks the next batch; they may ask for more than the free slots (see
:mod:`shoal.worker.prefetch`), so that the next batch is at hand as soon as slots free up.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path

from shoal.app import App, Event, periodic
from shoal.backends import Backend
from shoal.core.backoff import Backoff
from shoal.core.errors import ConfigurationError, ShoalError
from shoal.core.ids import new_id
from shoal.core.models import Claim, WorkerInfo, utcnow
from shoal.core.settings import WorkerSettings
from shoal.core.version import VERSION
from shoal.core.waiting import first_of
from shoal.worker import metrics
from shoal.worker.announcer import Announcer
from shoal.worker.cancels import Cancels
from shoal.worker.draining import Draining
from shoal.worker.execution import Outcome, execute
from shoal.worker.health import Progress, resident_memory_mb, touch_health_file
from shoal.worker.limits import WorkerLimits
from shoal.worker.pacing import Pace, heartbeat_pace, on_demand_pace, reap_pace
from shoal.worker.prefetch import claim_ahead, updated_run_time
from shoal.worker.recorder import Recorder
from shoal.worker.slots import Slots
from shoal.worker.watchdog import LoopWatchdog

logger = logging.getLogger("shoal.worker")

_TICK_MARGIN = 0.005
"""Seconds past a tick's due time that a worker waking for it claims: the backend's clock
decides what is due, and may be a little behind this one."""


class Worker(Draining):
    """Runs the tasks of one app from some of its queues; see :class:`WorkerSettings`."""

    def __init__(self, app: App, settings: WorkerSettings | None = None) -> None:
        self.app = app
        self.settings = settings or WorkerSettings()
        self.id = new_id()
        self.host = self.settings.host or socket.gethostname()
        self.queues = self.settings.queues or tuple(app.queues)
        self.processed = 0
        self.stop_reason: str | None = None
        self._wakeup = asyncio.Event()
        self._announcer = Announcer(app.hooks, self.id)
        self._slots = Slots(self.settings.concurrency, freed=self._wakeup.set)
        self._cancels = Cancels(lambda name: name in app.tasks and app.tasks[name].is_async)
        self._running = self._slots.running
        self._claimed: collections.deque[Claim] = collections.deque()  # not started yet
        self._claiming: asyncio.Task[list[Claim]] | None = None
        self._found_nothing = False
        self._asked = 0  # what the claim on its way asked for
        self._typical_run_time: float | None = None  # decides how far ahead to claim
        self._recorder = Recorder(
            lambda: self.app.backend, stored=self._announcer.ended, wake=self._wakeup.set
        )
        self._watchdog = LoopWatchdog(self._slots.names, extra=self._extra())
        self._hurry = False
        self._started_at = utcnow()
        self._heartbeats = heartbeat_pace(self.settings.heartbeat_interval)
        self._reaps = reap_pace(self.settings.reap_interval)
        self._claims = on_demand_pace()
        self._failures_in_a_row = 0
        self._limits = WorkerLimits(app, self.queues, self.settings.rate_limit, time.monotonic())
        self._schedules_registered = False
        self._tick_due: float | None = None  # monotonic: when a tick we materialised is due
        self.progress = Progress()
        """Heartbeats begun and succeeded, for the health endpoint (worker/health.py)."""

    @property
    def backend(self) -> Backend:
        return self.app.backend

    @property
    def in_flight(self) -> int:
        """Tasks this worker holds: running, or claimed ahead and about to start."""
        return len(self._running) + len(self._claimed)

    @property
    def abandoned(self) -> list[str]:
        """Tasks whose handlers still ran when the drain ended: left to their leases."""
        return self._slots.abandoned

    def stop(self, reason: str = "asked to stop") -> None:
        """Stop claiming and drain. Calling it again skips the wait for running tasks."""
        if self.stop_reason is not None:
            self._hurry = True
            logger.warning("stopping now: unfinished tasks are released", extra=self._extra())
        else:
            self.stop_reason = reason
            logger.info("draining: %s", reason, extra=self._extra())
        self._wakeup.set()

    async def run(self) -> None:
        """Work until :meth:`stop` is called (or recycling asks to), then drain and return."""
        if not self.queues:
            raise ConfigurationError("the app registers no tasks and no queues were given")
        await self.app.open()
        logger.info(
            "worker %s on %s serving %s with concurrency %d",
            self.id,
            self.host,
            ", ".join(self.queues),
            self.settings.concurrency,
            extra=self._extra(),
        )
        self._announcer.announce(Event("worker_started", self.id))
        self._watchdog.start()
        try:
            while self.stop_reason is None:
                try:
                    await self._step()
                    self._failures_in_a_row = 0
                except ShoalError as error:
                    await self._back_off(error)
        finally:
            try:
                await self._drain()
            finally:
                self._watchdog.stop()

    # -- the loop ----------------------------------------------------------------------------

    async def _step(self) -> None:
        self._wakeup.clear()
        self._collect_claim()
        self._start_claimed()
        # The claim starts before the upkeep: work that woke the worker must not wait for a
        # heartbeat's or a reap's round trip first (it runs in the background meanwhile).
        idle = self._claim_if_wanted()
        await self._upkeep()
        if self.stop_reason is not None:
            return  # a stop arrived while the upkeep awaited the backend: start nothing
        await self._wait(work_welcome=idle)

    def _claim_if_wanted(self) -> bool:
        """Start a claim in the background if slots want one; True when the last claim came
        back empty, so the loop waits for a wake-up or the next poll instead."""
        wanted, now = self._wanted(), time.monotonic()
        if wanted <= 0 or self._claiming is not None or not self._claims.is_due(now):
            return False
        if not self._limits.may_claim(now):
            return True  # rate limits held work back: look again at their pace
        if self._found_nothing:
            self._found_nothing = False
            return True
        self._asked = wanted
        self._claiming = asyncio.create_task(self._claim(wanted))
        self._claiming.add_done_callback(self._claim_came_back)
        return False

    def _claim_came_back(self, claiming: asyncio.Task[list[Claim]]) -> None:
        """Start what a claim brought as soon as it is back, not at the loop's next turn: an
        idle worker's tasks start a loop turn earlier (the loop still wakes to claim more)."""
        if claiming is not self._claiming or claiming.cancelled():
            return  # the drain took it over
        error = claiming.exception()
        if error is not None and not isinstance(error, ShoalError):
            return  # not a backend error: the loop's next step raises it
        self._collect_claim()
        self._start_claimed()

    def _wanted(self) -> int:
        """How many tasks the next claim asks for: free slots, plus what to claim ahead,
        less what is claimed already; never more than recycling leaves to run."""
        settings = self.settings
        ahead = claim_ahead(settings.concurrency, settings.prefetch, self._typical_run_time)
        wanted = self._slots.free + ahead - len(self._claimed)
        wanted = self._limits.claimable(wanted, len(self._claimed), time.monotonic())
        if settings.max_tasks is not None:
            wanted = min(wanted, settings.max_tasks - self.processed - self.in_flight)
        return wanted

    async def _upkeep(self) -> None:
        """Record outcomes (in the background), heartbeat and reap when due, touch the
        health file. Each call keeps its own pace: a failure backs off that call only."""
        now = time.monotonic()
        try:
            self._recorder.send_in_background(now)  # counts its own failures
        except ShoalError as error:
            self._log_backend_error(self._recorder.pace, "recording outcomes", error)
        await self._paced(self._heartbeats, "heartbeat", self._heartbeat, now)
        await self._paced(self._reaps, "reap", self._reap, now)

    async def _paced(
        self, pace: Pace, call: str, make_call: Callable[[], Awaitable[None]], now: float
    ) -> None:
        if not pace.is_due(now):
            return
        try:
            await make_call()
        except ShoalError as error:
            pace.failed(time.monotonic())
            self._log_backend_error(pace, call, error)
        else:
            pace.succeeded(now)

    def _log_backend_error(self, pace: Pace, call: str, error: ShoalError) -> None:
        if pace.worth_logging:
            logger.error(
                "backend error, retrying in %.1fs (%s, failure %d in a row): %s",
                max(0.0, pace.due - time.monotonic()),
                call,
                pace.failures,
                error,
                extra=self._extra(),
            )

    async def _reap(self) -> None:
        if not self._schedules_registered:
            # At the first reap (the worker's start), and again at the reap's pace until
            # it succeeds: the app's schedules in the backend, each with a pending tick.
            records = await periodic.register(self.app)
            self._schedules_registered = True
            self._wake_for(periodic.first_due(self.app, records))
        # Finished tasks of the queues this worker serves go by its app's retention.
        fallback = self.backend.default_retention
        retention = {q: self.app.retention_for(q) or fallback for q in self.queues}
        report = await self.backend.reap(
            worker_timeout=self.settings.lease_seconds * 3, retention=retention
        )
        for task_id in report.requeued:
            logger.warning("lease expired: re-queued", extra={"task_id": task_id})
        for task_id in report.dead:
            logger.error("lease expired too often: dead", extra={"task_id": task_id})

    async def _claim(self, limit: int) -> list[Claim]:
        started = time.perf_counter()
        try:
            return await self.backend.claim(
                self.queues, self.id, limit, self.settings.lease_seconds
            )
        finally:
            metrics.CLAIM_LATENCY.observe(time.perf_counter() - started)
            self._wakeup.set()

    def _collect_claim(self) -> None:
        """Take in the claim that came back, if one did; a failed one backs claims off."""
        claiming = self._claiming
        if claiming is None or not claiming.done():
            return
        self._claiming = None
        try:
            claims = claiming.result()
        except ShoalError as error:
            self._claims.failed(time.monotonic())
            self._log_backend_error(self._claims, "claim", error)
            return
        self._claims.succeeded(time.monotonic())
        self._claimed.extend(claims)
        held = self._limits.claimed(len(claims), self._asked, time.monotonic())
        self._found_nothing = not claims and not held

    def _wait_timeout(self) -> float:
        """Seconds the loop may wait: the poll interval, or less if a call falls due."""
        now = time.monotonic()
        due = [self._heartbeats.due]
        due += self._limits.due(now)
        if self._tick_due is not None:
            if self._tick_due <= now:
                self._tick_due = None  # passed: this wait ends, and the claim finds the tick
            else:
                due.append(self._tick_due + _TICK_MARGIN)
        if self._claims.backing_off:
            due.append(self._claims.due)
        if self._recorder.pace.backing_off and self._recorder.waiting:
            due.append(self._recorder.pace.due)
        return max(0.0, min(self.settings.poll_interval, min(due) - now))

    async def _wait(self, *, work_welcome: bool) -> None:
        if self._wakeup.is_set():
            return
        timeout = self._wait_timeout()
        if not work_welcome:
            await first_of(self._wakeup.wait(), timeout=timeout)
            return
        await first_of(
            self._wakeup.wait(), self.backend.wait_for_work(self.queues, timeout), timeout=timeout
        )

    async def _back_off(self, error: ShoalError) -> None:
        """After an error no call's own pace handled: wait, but never past a heartbeat."""
        self._failures_in_a_row += 1
        delay = Backoff().delay(self._failures_in_a_row)
        delay = max(0.0, min(delay, self._heartbeats.due - time.monotonic()))
        logger.error("backend error, retrying in %.1fs: %s", delay, error, extra=self._extra())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), delay)

    # -- tasks -------------------------------------------------------------------------------

    def _start_claimed(self) -> None:
        """Start claimed tasks in the free slots; none once the worker is stopping."""
        free = self._slots.free
        free = self._limits.startable(free, time.monotonic())
        if free <= 0 or not self._claimed or self.stop_reason is not None:
            return
        starting = [self._claimed.popleft() for _ in range(min(free, len(self._claimed)))]
        self._limits.started(len(starting), time.monotonic())
        metrics.started(starting)
        self._announcer.started(starting)
        for claim in starting:
            running = asyncio.create_task(
                execute(
                    self.app,
                    claim,
                    worker_id=self.id,
                    threads=self._slots.threads,
                    stop_worker=self._stop_for_task,
                    thread_outlived=functools.partial(self._slots.thread_outlived, claim),
                    cancellation=self._cancels.started(claim.task.id),
                )
            )
            self._running[claim.task.id] = (claim, running)
            running.add_done_callback(functools.partial(self._finished, claim))

    def _stop_for_task(self) -> None:
        self.stop("a task asked the worker to stop")

    def _finished(self, claim: Claim, done: asyncio.Task[Outcome]) -> None:
        self._cancels.ended(claim.task.id)
        outcome = self._slots.ended(claim, done)
        if outcome is None:
            return
        if not outcome.released:
            self.processed += 1
            self._typical_run_time = updated_run_time(self._typical_run_time, outcome.duration)
        if outcome.tick is not None:
            self._wake_for(outcome.tick.next_due)
        self._recorder.add(outcome)
        self._wakeup.set()
        self._check_recycling()

    def _wake_for(self, due_at: datetime | None) -> None:
        """No wake-up says that a scheduled task came due: wake for a tick ourselves."""
        if due_at is not None:
            due = time.monotonic() + (due_at - utcnow()).total_seconds()
            self._tick_due = due if self._tick_due is None else min(self._tick_due, due)

    def _check_recycling(self) -> None:
        if self.stop_reason is not None:
            return
        limit = self.settings.max_tasks
        if limit is not None and self.processed >= limit:
            self.stop(f"recycling after {self.processed} tasks")
        elif self.settings.max_rss_mb is not None:
            rss = resident_memory_mb()
            if rss > self.settings.max_rss_mb:
                self.stop(f"recycling at {rss:.0f} MiB resident memory")

    async def _heartbeat(self) -> None:
        self.progress.beginning()
        leases = [claim.lease for claim, _ in self._running.values()]
        leases += [claim.lease for claim in self._claimed]
        leases += self._recorder.unsent_leases()
        info = WorkerInfo(
            id=self.id,
            host=self.host,
            pid=os.getpid(),
            queues=tuple(self.queues),
            concurrency=self.settings.concurrency,
            in_flight=self.in_flight,
            started_at=self._started_at,
            version=VERSION,
        )
        reply = await self.backend.heartbeat(info, leases, self.settings.lease_seconds)
        self.progress.succeeding()
        lost = set(reply.lost)
        if reply.cancelling:
            self._claimed = self._cancels.deliver(reply.cancelling, self._running, self._claimed)
        if lost and self._claimed:
            # Held too long (a stalled loop): another worker may own them now; not ours to run.
            self._claimed = collections.deque(c for c in self._claimed if c.task.id not in lost)
        for task_id in lost:
            # An outcome whose record started during the heartbeat may be stored already;
            # a finished attempt whose lease was really lost is reported by its record.
            if task_id in self._running:
                logger.warning("lease lost while running", extra={"task_id": task_id})
        if self.settings.health_file:
            touch_health_file(Path(self.settings.health_file))

    def _extra(self) -> dict[str, object]:
        return {"worker_id": self.id}
