"""``memory://``: every task in a dict of this process, for tests and examples.

It keeps the full contract (leases, fencing, reaping) so that code tested against it behaves
the same on a real backend; it just forgets everything when the process ends.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from shoal.backends.base import (
    PURGEABLE,
    Backend,
    OnConflict,
    lease_expired_message,
    reject_connection,
)
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.errors import IdempotencyConflict, LeaseLost, TaskNotFound
from shoal.core.models import (
    CLAIMABLE,
    UNFINISHED,
    Claim,
    Failure,
    Lease,
    NewTask,
    QueueStats,
    ReapReport,
    Task,
    TaskStatus,
    WorkerInfo,
    utcnow,
)


def from_url(url: str) -> MemoryBackend:
    return MemoryBackend()


@dataclasses.dataclass(slots=True)
class _Running:
    token: str
    expires_at: datetime


class MemoryBackend(Backend):
    """The contract over plain dicts; all methods run on the event loop, so they are atomic."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._tasks: dict[str, Task] = {}
        self._leases: dict[str, _Running] = {}
        self._workers: dict[str, WorkerInfo] = {}
        # Its own calls are the only source of hints: it hears them all, never looks.
        self._wakeups = Wakeups(complete=True)

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def setup(self) -> None:
        pass

    async def verify_schema(self) -> None:
        pass

    async def push(
        self,
        tasks: Sequence[NewTask],
        *,
        on_conflict: OnConflict = OnConflict.RAISE,
        connection: object | None = None,
    ) -> list[str]:
        reject_connection(self, connection)
        holders = {
            (t.queue, t.idempotency_key): t.id
            for t in self._tasks.values()
            if t.idempotency_key is not None and t.status in UNFINISHED
        }
        ids: list[str] = []
        conflicts: list[str] = []
        accepted: list[NewTask] = []
        for new in tasks:
            if new.idempotency_key is not None:
                key = (new.queue, new.idempotency_key)
                if key in holders:
                    conflicts.append(new.idempotency_key)
                    ids.append(holders[key])
                    continue
                holders[key] = new.id
            accepted.append(new)
            ids.append(new.id)
        if conflicts and on_conflict is OnConflict.RAISE:
            raise IdempotencyConflict(tasks[0].queue, sorted(set(conflicts)), len(tasks))
        now = utcnow()
        for new in accepted:
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
            )
        if accepted:
            self._wakeups.work({new.queue for new in accepted})
        return ids

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
        )[:limit]
        token = uuid.uuid4().hex
        claims = []
        for task in due:
            running = self._update(
                task, status=TaskStatus.RUNNING, attempts=task.attempts + 1, worker_id=worker_id
            )
            self._leases[task.id] = _Running(token, now + timedelta(seconds=lease_seconds))
            claims.append(Claim(running, Lease(task.id, token, running.attempts)))
        return claims

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

    async def ack(self, leases: Sequence[Lease]) -> None:
        lost = []
        for lease in leases:
            if not self._holds(lease):
                lost.append(lease.task_id)
                continue
            self._finish(lease, status=TaskStatus.DONE, finished_at=utcnow())
        if lost:
            raise LeaseLost(lost)

    async def fail(self, failures: Sequence[Failure]) -> None:
        lost = []
        for failure in failures:
            if not self._holds(failure.lease):
                lost.append(failure.lease.task_id)
            elif failure.retry_at is None:
                self._finish(
                    failure.lease,
                    status=TaskStatus.DEAD,
                    last_error=failure.error,
                    finished_at=utcnow(),
                )
            else:
                self._finish(
                    failure.lease,
                    status=TaskStatus.RETRYING,
                    last_error=failure.error,
                    run_at=failure.retry_at,
                )
        if lost:
            raise LeaseLost(lost)

    async def release(self, leases: Sequence[Lease]) -> None:
        for lease in leases:
            if self._holds(lease):
                task = self._tasks[lease.task_id]
                self._finish(lease, status=TaskStatus.QUEUED, attempts=task.attempts - 1)
                self._wakeups.work([task.queue])

    async def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease_seconds: float
    ) -> list[str]:
        now = utcnow()
        self._workers[worker.id] = dataclasses.replace(worker, last_seen=now)
        lost = []
        for lease in leases:
            if self._holds(lease):
                self._leases[lease.task_id].expires_at = now + timedelta(seconds=lease_seconds)
            else:
                lost.append(lease.task_id)
        return lost

    async def deregister(self, worker_id: str) -> None:
        self._workers.pop(worker_id, None)

    async def reap(self, *, worker_timeout: float) -> ReapReport:
        now = utcnow()
        requeued, dead = [], []
        for task_id, running in list(self._leases.items()):
            if running.expires_at >= now:
                continue
            del self._leases[task_id]
            task = self._tasks[task_id]
            expirations = task.lease_expirations + 1
            if task.attempts >= task.max_attempts:
                self._update(
                    task,
                    status=TaskStatus.DEAD,
                    worker_id=None,
                    finished_at=now,
                    lease_expirations=expirations,
                    last_error=lease_expired_message(expirations),
                )
                dead.append(task_id)
            else:
                self._update(
                    task, status=TaskStatus.QUEUED, worker_id=None, lease_expirations=expirations
                )
                requeued.append(task_id)
        silent = now - timedelta(seconds=worker_timeout)
        for worker_id, info in list(self._workers.items()):
            if info.last_seen < silent:
                del self._workers[worker_id]
        if requeued:
            self._wakeups.work({self._tasks[task_id].queue for task_id in requeued})
        return ReapReport(tuple(requeued), tuple(dead))

    async def stats(self, queues: Sequence[str]) -> dict[str, QueueStats]:
        now = utcnow()
        figures = {q: {"ready": 0, "scheduled": 0, "running": 0, "dead": 0} for q in queues}
        oldest: dict[str, datetime] = {}
        for task in self._tasks.values():
            counts = figures.get(task.queue)
            if counts is None:
                continue
            if task.status in CLAIMABLE:
                if task.run_at <= now:
                    counts["ready"] += 1
                    oldest[task.queue] = min(oldest.get(task.queue, task.run_at), task.run_at)
                else:
                    counts["scheduled"] += 1
            elif task.status in (TaskStatus.RUNNING, TaskStatus.DEAD):
                counts[task.status.value] += 1
        return {
            queue: QueueStats(
                queue,
                **counts,
                oldest_ready_age=(now - oldest[queue]).total_seconds() if queue in oldest else None,
            )
            for queue, counts in figures.items()
        }

    async def queues(self) -> list[str]:
        return sorted({t.queue for t in self._tasks.values()})

    async def workers(self) -> list[WorkerInfo]:
        return sorted(self._workers.values(), key=lambda w: w.id)

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        await self._wakeups.wait_for_work(queues, timeout)

    async def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    async def list_tasks(
        self, *, queue: str | None = None, statuses: Sequence[TaskStatus] = (), limit: int = 100
    ) -> list[Task]:
        chosen = [
            t
            for t in self._tasks.values()
            if (queue is None or t.queue == queue) and (not statuses or t.status in statuses)
        ]
        return sorted(chosen, key=lambda t: t.id, reverse=True)[:limit]

    def _existing(self, task_id: str) -> Task:
        task = self._tasks.get(task_id)
        if task is None:
            raise TaskNotFound(task_id)
        return task

    async def retry(self, task_id: str, *, run_at: datetime | None = None) -> bool:
        task = self._existing(task_id)
        if task.status not in (TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.RETRYING):
            return False
        self._update(
            task, status=TaskStatus.QUEUED, attempts=0, run_at=run_at or utcnow(), finished_at=None
        )
        self._wakeups.work([task.queue])
        return True

    async def cancel(self, task_id: str) -> bool:
        task = self._existing(task_id)
        if task.status not in CLAIMABLE:
            return False
        self._update(task, status=TaskStatus.CANCELLED, finished_at=utcnow())
        return True

    async def purge(self, *, queue: str | None, statuses: Sequence[TaskStatus]) -> int:
        doomed = [
            t.id
            for t in self._tasks.values()
            if t.status in PURGEABLE
            and t.status in statuses
            and (queue is None or t.queue == queue)
        ]
        for task_id in doomed:
            del self._tasks[task_id]
        return len(doomed)

    def _update(self, task: Task, **changes: object) -> Task:
        updated = dataclasses.replace(task, updated_at=utcnow(), **changes)  # type: ignore[arg-type]
        self._tasks[task.id] = updated
        return updated
