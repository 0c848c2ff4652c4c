"""``memory://``: every task in a dict of this process, for tests and examples.

It keeps the full contract (leases, fencing, reaping) so that code tested against it behaves
the same on a real backend; it just forgets everything when the process ends.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from shoal.backends.base import Backend, OnConflict
from shoal.backends.memory.admin import MemoryAdmin
from shoal.backends.memory.schedules import MemorySchedules
from shoal.backends.shared.fencing import heartbeat_reply, refuse_lost
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.idempotency import Key, resolve
from shoal.backends.shared.limiting import (
    Bucket,
    BucketKey,
    Candidate,
    SlotKey,
    admit,
    candidates_needed,
    held_back,
)
from shoal.backends.shared.reaping import Expired, judge, report_verdicts
from shoal.backends.shared.results import outcome_of
from shoal.backends.shared.retention import PRUNE_PER_REAP
from shoal.backends.shared.storable import check_storable
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.errors import TaskNotFound
from shoal.core.limits import TaskLimits
from shoal.core.models import (
    CLAIMABLE,
    UNFINISHED,
    BackendHealth,
    Claim,
    Failure,
    HeartbeatReply,
    KeptValue,
    Lease,
    NewTask,
    QueueStats,
    ReapReport,
    Task,
    TaskResult,
    TaskStatus,
    WorkerInfo,
    utcnow,
)
from shoal.core.retention import Retention, expiries
from shoal.core.schedule_records import ScheduleRecord


def from_url(url: str) -> MemoryBackend:
    return MemoryBackend()


@dataclasses.dataclass(slots=True)
class _Running:
    token: str
    expires_at: datetime


class MemoryBackend(MemoryAdmin, MemorySchedules, Backend):
    """The contract over plain dicts; all methods run on the event loop, so they are atomic.
    The admin and schedule primitives are mixed in (``admin.py``, ``schedules.py``)."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._tasks: dict[str, Task] = {}
        self._leases: dict[str, _Running] = {}
        self._workers: dict[str, WorkerInfo] = {}
        self._buckets: dict[BucketKey, Bucket] = {}
        self._schedules: dict[str, ScheduleRecord] = {}  # "pending" is derived on reading
        self._results: dict[str, TaskResult] = {}  # apart from tasks: a purge keeps them
        # Its own calls are the only source of hints: it hears them all, never looks.
        self._wakeups = Wakeups(complete=True)
        self._finishes = Finishes(complete=True)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def setup(self) -> None:
        pass

    async def verify_schema(self) -> None:
        pass

    async def health(self) -> BackendHealth:
        # Known to be ephemeral: no warning, but a worker that requires durability refuses it.
        return BackendHealth({"storage": "this process's memory"}, durable=False)

    async def push(
        self, tasks: Sequence[NewTask], *, on_conflict: OnConflict = OnConflict.RAISE
    ) -> list[str]:
        check_storable(tasks)
        batch = resolve(tasks, self._held_keys())
        ids = batch.reply(on_conflict)
        now = utcnow()
        for new in batch.fresh:
            self._tasks[new.id] = Task(
                id=new.id,
                queue=new.queue,
                name=new.name,
                payload=new.payload,
                status=TaskStatus.QUEUED,
                priority=new.priority,
                run_at=new.run_at,
                attempts=0,
                max_attempts=new.max_attempts,
                created_at=now,
                updated_at=now,
                idempotency_key=new.idempotency_key,
                metadata=dict(new.metadata),
                limits=new.limits,
            )
        if batch.fresh:
            self._wakeups.work({new.queue for new in batch.fresh})
        return ids

    def _held_keys(self) -> dict[Key, str]:
        return {
            (t.queue, t.idempotency_key): t.id
            for t in self._tasks.values()
            if t.idempotency_key is not None and t.status in UNFINISHED
        }

    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_seconds: float
    ) -> list[Claim]:
        self._wakeups.claiming(queues)
        now = utcnow()
        wanted = set(queues)
        due = sorted(
            (
                t
                for t in self._tasks.values()
                if t.queue in wanted and t.status in CLAIMABLE and t.run_at <= now
            ),
            key=lambda t: (-t.priority, t.run_at, t.id),
        )
        due = self._admit(due, limit) if any(t.limits.limited for t in due) else due[:limit]
        token = uuid.uuid4().hex
        claims = []
        for task in due:
            running = self._update(
                task, status=TaskStatus.RUNNING, attempts=task.attempts + 1, worker_id=worker_id
            )
            self._leases[task.id] = _Running(token, now + timedelta(seconds=lease_seconds))
            claims.append(Claim(running, Lease(task.id, token, running.attempts)))
        return claims

    def _admit(self, due: list[Task], limit: int) -> list[Task]:
        """The due tasks the limits let this claim take (shared rule), spending the buckets."""
        candidates = (Candidate(t.id, t.queue, t.limits) for t in due[: candidates_needed(limit)])
        admitted = admit(candidates, limit, self._buckets, self._running_by_key(), time.time())
        self._buckets.update(admitted.buckets)
        return [self._tasks[task_id] for task_id in admitted.ids]

    def _running_by_key(self) -> dict[SlotKey, int]:
        running: dict[SlotKey, int] = {}
        for task in self._tasks.values():
            key = task.limits.concurrency_key
            if key is not None and task.status is TaskStatus.RUNNING:
                running[task.queue, key] = running.get((task.queue, key), 0) + 1
        return running

    def _holds(self, lease: Lease) -> bool:
        task = self._tasks.get(lease.task_id)
        running = self._leases.get(lease.task_id)
        return (
            task is not None
            and running is not None
            and task.status is TaskStatus.RUNNING
            and running.token == lease.token
            and task.attempts == lease.attempt
        )

    def _finish(self, lease: Lease, **changes: object) -> None:
        del self._leases[lease.task_id]
        self._update(self._tasks[lease.task_id], worker_id=None, **changes)

    def _end(self, leases: Sequence[Lease], status: TaskStatus) -> set[str]:
        """Finish the tasks whose lease is still theirs as ``status``; their ids."""
        applied = set()
        for lease in leases:
            if self._holds(lease):
                self._finish(lease, status=status, finished_at=utcnow())
                applied.add(lease.task_id)
        return applied

    async def ack(self, leases: Sequence[Lease], results: Sequence[KeptValue] = ()) -> None:
        applied = self._end(leases, TaskStatus.DONE)
        kept = [r for r in results if r.task_id in applied]
        for r in kept:
            self._results[r.task_id] = TaskResult(
                r.task_id, TaskStatus.DONE, value=r.value, expires_at=r.expires_at
            )
        self._finishes.finished(r.task_id for r in kept)
        refuse_lost(leases, applied)

    async def fail(self, failures: Sequence[Failure]) -> None:
        applied = set()
        for failure in failures:
            if not self._holds(failure.lease):
                continue
            applied.add(failure.lease.task_id)
            if failure.retry_at is None:
                self._finish(
                    failure.lease,
                    status=TaskStatus.DEAD,
                    last_error=failure.error,
                    last_traceback=failure.traceback,
                    finished_at=utcnow(),
                )
                if failure.keep_until is not None:
                    self._results[failure.lease.task_id] = TaskResult(
                        failure.lease.task_id,
                        TaskStatus.DEAD,
                        error=failure.error,
                        traceback=failure.traceback,
                        expires_at=failure.keep_until,
                    )
                self._finishes.finished([failure.lease.task_id])
            else:
                self._finish(
                    failure.lease,
                    status=TaskStatus.RETRYING,
                    last_error=failure.error,
                    last_traceback=failure.traceback,
                    run_at=failure.retry_at,
                )
        refuse_lost([f.lease for f in failures], applied)

    async def release(self, leases: Sequence[Lease]) -> None:
        for lease in leases:
            if self._holds(lease):
                task = self._tasks[lease.task_id]
                self._finish(lease, status=TaskStatus.QUEUED, attempts=task.attempts - 1)
                self._wakeups.work([task.queue])

    async def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatReply:
        now = utcnow()
        self._workers[worker.id] = dataclasses.replace(worker, last_seen=now)
        applied = {lease.task_id for lease in leases if self._holds(lease)}
        for task_id in applied:
            self._leases[task_id].expires_at = now + timedelta(seconds=lease_seconds)
        return heartbeat_reply(leases, {i: self._tasks[i].cancelled_by for i in applied})

    async def cancel_running(self, leases: Sequence[Lease]) -> None:
        applied = self._end(leases, TaskStatus.CANCELLED)
        self._finishes.finished(applied)
        refuse_lost(leases, applied)

    async def deregister(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def reap(
        self, *, worker_timeout: float, retention: Mapping[str, Retention] | None = None
    ) -> ReapReport:
        now = utcnow()
        expired = [task_id for task_id, r in self._leases.items() if r.expires_at < now]
        verdicts = judge(
            Expired(t.id, t.attempts, t.max_attempts, t.lease_expirations)
            for t in (self._tasks[task_id] for task_id in expired)
        )
        for verdict in verdicts:
            del self._leases[verdict.task_id]
            task = self._tasks[verdict.task_id]
            self._update(
                task,
                status=verdict.status,
                worker_id=None,
                lease_expirations=verdict.lease_expirations,
                last_error=verdict.error or task.last_error,
                finished_at=now if verdict.status is TaskStatus.DEAD else None,
            )
        silent = now - timedelta(seconds=worker_timeout)
        for worker_id, info in list(self._workers.items()):
            if info.last_seen < silent:
                del self._workers[worker_id]
        requeued = {self._tasks[v.task_id].queue for v in verdicts if v.status is TaskStatus.QUEUED}
        if requeued:
            self._wakeups.work(requeued)
        self._finishes.finished(v.task_id for v in verdicts if v.status is TaskStatus.DEAD)
        for task_id, kept in list(self._results.items()):
            if kept.expires_at is not None and kept.expires_at <= now:
                del self._results[task_id]
        self._prune(retention or {})
        return report_verdicts(verdicts)

    def _prune(self, retention: Mapping[str, Retention]) -> None:
        now = utcnow()
        rules = {(e.queue, e.status): timedelta(seconds=e.seconds) for e in expiries(retention)}
        doomed = sorted(
            (t.finished_at, t.id)
            for t in self._tasks.values()
            if t.finished_at is not None
            and (t.queue, t.status) in rules
            and t.finished_at <= now - rules[t.queue, t.status]
        )
        for _, task_id in doomed[:PRUNE_PER_REAP]:
            del self._tasks[task_id]

    async def stats(self, queues: Sequence[str]) -> dict[str, QueueStats]:
        now = utcnow()
        figures = {q: {"ready": 0, "scheduled": 0, "running": 0, "dead": 0} for q in queues}
        oldest: dict[str, datetime] = {}
        limited: list[tuple[str, TaskLimits, int]] = []
        upcoming: dict[str, datetime] = {}
        for task in self._tasks.values():
            counts = figures.get(task.queue)
            if counts is None:
                continue
            if task.status in CLAIMABLE:
                if task.run_at <= now:
                    counts["ready"] += 1
                    if task.limits.limited:
                        limited.append((task.queue, task.limits, 1))
                    oldest[task.queue] = min(oldest.get(task.queue, task.run_at), task.run_at)
                else:
                    counts["scheduled"] += 1
                    upcoming[task.queue] = min(upcoming.get(task.queue, task.run_at), task.run_at)
            elif task.status in (TaskStatus.RUNNING, TaskStatus.DEAD):
                counts[task.status.value] += 1
        held = held_back(limited, self._buckets, self._running_by_key(), time.time())
        return {
            queue: QueueStats(
                queue,
                **counts,
                oldest_ready_age=(now - oldest[queue]).total_seconds() if queue in oldest else None,
                held_back=held.get(queue, 0),
                next_due_in=(upcoming[queue] - now).total_seconds() if queue in upcoming else None,
            )
            for queue, counts in figures.items()
        }

    async def queues(self) -> list[str]:
        return sorted({t.queue for t in self._tasks.values()})

    async def workers(self) -> list[WorkerInfo]:
        return sorted(self._workers.values(), key=lambda w: w.id)

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        await self._wakeups.wait_for_work(queues, timeout)

    async def result(self, task_id: str) -> TaskResult | None:
        kept = self._results.get(task_id)
        if kept is not None and kept.expires_at is not None and kept.expires_at > utcnow():
            return kept
        return outcome_of(self._existing(task_id))

    async def wait_for_result(self, task_id: str, timeout: float) -> TaskResult | None:
        return await self._finishes.wait_for_result(task_id, timeout, lambda: self.result(task_id))

    def _existing(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    def _update(self, task: Task, **changes: object) -> Task:
        updated = dataclasses.replace(task, updated_at=utcnow(), **changes)  # type: ignore[arg-type]
        self._tasks[task.id] = updated
        return updated
