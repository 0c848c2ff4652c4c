"""The backend: every primitive one locked read-change-write of the JSON file."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from shoal.backends import Backend, OnConflict
from shoal.backends.base import PURGEABLE, UNKNOWN_ASKER
from shoal.backends.shared.fencing import heartbeat_reply
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.idempotency import resolve
from shoal.backends.shared.listing import TaskQuery
from shoal.backends.shared.reaping import Expired, judge, report_verdicts
from shoal.backends.shared.results import outcome_of
from shoal.backends.shared.retention import PRUNE_PER_REAP
from shoal.backends.shared.storable import check_storable
from shoal.core.errors import (
    BackendUnavailable,
    LeaseLost,
    SchemaMissing,
    TaskNotFound,
)
from shoal.core.models import (
    CLAIMABLE,
    UNFINISHED,
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
from shoal.core.throughput import COUNTED, FinishCounts, Window, tally_times
from shoal.core.urls import redact
from shoal_example_backend.limits import admitted, held
from shoal_example_backend.records import (
    holds,
    kept_record,
    record_of,
    result_of,
    task_of,
    worker_of,
)
from shoal_example_backend.schedules import JsonSchedules

State = dict[str, dict[str, dict[str, Any]]]
T = TypeVar("T")

LOOK_INTERVAL = 0.05
"""Seconds between looks at the file while waiting: how late another process's push wakes."""


class JsonFileBackend(JsonSchedules, Backend):
    """The contract over one JSON file, every primitive one locked read-change-write (the
    schedule primitives: ``schedules.py``)."""

    def __init__(self, url: str, path: Path) -> None:
        self.url = redact(url)  # what logs and errors show
        self.path = path
        self._lock_path = path.with_name(path.name + ".lock")
        self._pushed = asyncio.Event()
        # Waits for results are woken by this instance's acks and fails at once, and look
        # at the file every LOOK_INTERVAL for other processes' (nothing tells of those).
        self._finishes = Finishes()

    # -- the one transaction -----------------------------------------------------------------

    async def _transact(self, change: Callable[[State], T], *, write: bool = True) -> T:
        return await asyncio.to_thread(self._locked, change, write)

    def _locked(self, change: Callable[[State], T], write: bool) -> T:
        with self._lock_path.open("a") as lock:
            # Readers share the lock, writers hold it alone; it is released as the file closes.
            fcntl.flock(lock, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
            if not self.path.exists():
                raise SchemaMissing(url=self.url)
            state: State = json.loads(self.path.read_text())
            result = change(state)
            if write:
                scratch = self.path.with_name(f"{self.path.name}.{uuid.uuid4().hex}")
                scratch.write_text(json.dumps(state))
                os.replace(scratch, self.path)
            return result

    def _wake(self) -> None:
        self._pushed.set()
        self._pushed = asyncio.Event()

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        if not self.path.parent.is_dir():
            raise BackendUnavailable(f"no folder {self.path.parent}", url=self.url)

    async def close(self) -> None:
        pass

    async def setup(self) -> None:
        def create() -> None:
            with self._lock_path.open("a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                if not self.path.exists():
                    self.path.write_text(json.dumps({"tasks": {}, "workers": {}}))

        await asyncio.to_thread(create)

    async def verify_schema(self) -> None:
        await self._transact(lambda state: None, write=False)

    # -- producers ---------------------------------------------------------------------------

    async def push(
        self, tasks: Sequence[NewTask], *, on_conflict: OnConflict = OnConflict.RAISE
    ) -> list[str]:
        check_storable(tasks)

        def store(state: State) -> list[str]:
            held = {
                (t["queue"], t["idempotency_key"]): t["id"]
                for t in state["tasks"].values()
                if t["idempotency_key"] is not None and t["status"] in UNFINISHED
            }
            batch = resolve(tasks, held)
            ids = batch.reply(on_conflict)  # raises before anything is stored: all or nothing
            now = utcnow().timestamp()
            for new in batch.fresh:
                state["tasks"][new.id] = record_of(new, now)
            return ids

        ids = await self._transact(store)
        self._wake()
        return ids

    # -- workers -----------------------------------------------------------------------------

    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_seconds: float
    ) -> list[Claim]:
        def take(state: State) -> list[Claim]:
            now = utcnow().timestamp()
            due = sorted(
                (
                    t
                    for t in state["tasks"].values()
                    if t["queue"] in queues and t["status"] in CLAIMABLE and t["run_at"] <= now
                ),
                key=lambda t: (-t["priority"], t["run_at"], t["id"]),
            )
            due = admitted(state, due, limit)
            token = uuid.uuid4().hex
            for record in due:
                record.update(status=TaskStatus.RUNNING, worker_id=worker_id, updated_at=now)
                record.update(attempts=record["attempts"] + 1, token=token)
                record["expires_at"] = now + lease_seconds
            return [Claim(task_of(r), Lease(r["id"], token, r["attempts"])) for r in due]

        return await self._transact(take)

    async def ack(self, leases: Sequence[Lease], results: Sequence[KeptValue] = ()) -> None:
        done = {"status": TaskStatus.DONE, "finished_at": utcnow().timestamp()}
        keep = {
            r.task_id: kept_record(
                r.task_id, TaskStatus.DONE, r.expires_at.timestamp(), value=r.value
            )
            for r in results
        }
        await self._finish([(lease, done) for lease in leases], report_lost=True, keep=keep)

    async def fail(self, failures: Sequence[Failure]) -> None:
        now = utcnow().timestamp()

        def outcome(failure: Failure) -> dict[str, Any]:
            said = {"last_error": failure.error, "last_traceback": failure.traceback}
            if failure.retry_at is None:
                return {"status": TaskStatus.DEAD, "finished_at": now, **said}
            return {"status": TaskStatus.RETRYING, "run_at": failure.retry_at.timestamp(), **said}

        keep = {
            f.lease.task_id: kept_record(
                f.lease.task_id,
                TaskStatus.DEAD,
                f.keep_until.timestamp(),
                error=f.error,
                traceback=f.traceback,
            )
            for f in failures
            if f.retry_at is None and f.keep_until is not None
        }
        dead = [f.lease for f in failures if f.retry_at is None]
        await self._finish([(f.lease, outcome(f)) for f in failures], report_lost=True, keep=keep)
        self._finishes.finished(lease.task_id for lease in dead)

    async def release(self, leases: Sequence[Lease]) -> None:
        back = [
            (lease, {"status": TaskStatus.QUEUED, "attempts": lease.attempt - 1})
            for lease in leases
        ]
        await self._finish(back, report_lost=False)
        self._wake()

    async def _finish(
        self,
        outcomes: Sequence[tuple[Lease, dict[str, Any]]],
        *,
        report_lost: bool,
        keep: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        """Apply each outcome whose lease still holds, and keep its result if one is in
        ``keep``; the rest are lost leases."""
        keep = keep or {}

        def apply(state: State) -> list[str]:
            lost = []
            for lease, changes in outcomes:
                record = state["tasks"].get(lease.task_id)
                if record is None or not holds(record, lease):
                    lost.append(lease.task_id)
                    continue
                record.update(changes, token=None, expires_at=None, worker_id=None)
                record["updated_at"] = utcnow().timestamp()
                if lease.task_id in keep:
                    state.setdefault("results", {})[lease.task_id] = keep[lease.task_id]
            return lost

        lost = await self._transact(apply)
        self._finishes.finished(task_id for task_id in keep if task_id not in lost)
        if lost and report_lost:
            raise LeaseLost(lost)

    async def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatReply:
        def beat(state: State) -> HeartbeatReply:
            now = utcnow().timestamp()
            state["workers"][worker.id] = {
                "id": worker.id,
                "host": worker.host,
                "pid": worker.pid,
                "queues": list(worker.queues),
                "concurrency": worker.concurrency,
                "in_flight": worker.in_flight,
                "started_at": worker.started_at.timestamp(),
                "last_seen": now,
                "version": worker.version,
            }
            renewed = {}
            for lease in leases:
                record = state["tasks"].get(lease.task_id)
                if record is not None and holds(record, lease):
                    record["expires_at"] = now + lease_seconds
                    renewed[lease.task_id] = record.get("cancelled_by")
            return heartbeat_reply(leases, renewed)

        return await self._transact(beat)

    async def cancel_running(self, leases: Sequence[Lease]) -> None:
        cancelled = {"status": TaskStatus.CANCELLED, "finished_at": utcnow().timestamp()}
        await self._finish([(lease, cancelled) for lease in leases], report_lost=True)
        self._finishes.finished(lease.task_id for lease in leases)  # as a cancel before it ran

    async def deregister(self, worker_id: str) -> None:
        await self._transact(lambda state: state["workers"].pop(worker_id, None))

    async def reap(
        self, *, worker_timeout: float, retention: Mapping[str, Retention] | None = None
    ) -> ReapReport:
        rules = {(e.queue, e.status): e.seconds for e in expiries(retention or {})}

        def sweep(state: State) -> ReapReport:
            now = utcnow().timestamp()
            expired = [
                record
                for record in state["tasks"].values()
                if record["status"] == TaskStatus.RUNNING and record["expires_at"] < now
            ]
            verdicts = judge(
                Expired(r["id"], r["attempts"], r["max_attempts"], r["lease_expirations"])
                for r in expired
            )
            for verdict in verdicts:
                record = state["tasks"][verdict.task_id]
                record.update(status=verdict.status, lease_expirations=verdict.lease_expirations)
                record.update(token=None, expires_at=None, worker_id=None, updated_at=now)
                if verdict.status is TaskStatus.DEAD:
                    record.update(finished_at=now, last_error=verdict.error)
            for worker_id, info in list(state["workers"].items()):
                if info["last_seen"] < now - worker_timeout:
                    del state["workers"][worker_id]
            results = state.setdefault("results", {})
            for task_id in [i for i, kept in results.items() if kept["expires_at"] <= now]:
                del results[task_id]
            doomed = sorted(
                (r["finished_at"], task_id)
                for task_id, r in state["tasks"].items()
                if (r["queue"], r["status"]) in rules
                and r["finished_at"] <= now - rules[r["queue"], r["status"]]
            )
            for _, task_id in doomed[:PRUNE_PER_REAP]:
                del state["tasks"][task_id]
            return report_verdicts(verdicts)

        report = await self._transact(sweep)
        self._finishes.finished(report.dead)
        return report

    # -- observers ---------------------------------------------------------------------------

    async def stats(self, queues: Sequence[str]) -> dict[str, QueueStats]:
        def count(state: State) -> dict[str, QueueStats]:
            now = utcnow().timestamp()
            figures = {q: {"ready": 0, "scheduled": 0, "running": 0, "dead": 0} for q in queues}
            oldest: dict[str, float] = {}
            ready = []
            upcoming: dict[str, float] = {}
            for record in state["tasks"].values():
                queue, status = record["queue"], record["status"]
                if queue not in figures:
                    continue
                if status in CLAIMABLE and record["run_at"] <= now:
                    figures[queue]["ready"] += 1
                    ready.append(record)
                    oldest[queue] = min(oldest.get(queue, now), record["run_at"])
                elif status in CLAIMABLE:
                    figures[queue]["scheduled"] += 1
                    upcoming[queue] = min(upcoming.get(queue, record["run_at"]), record["run_at"])
                elif status in (TaskStatus.RUNNING, TaskStatus.DEAD):
                    figures[queue][status] += 1
            held_back = held(state, ready)
            return {
                q: QueueStats(
                    q,
                    **counts,
                    oldest_ready_age=now - oldest[q] if q in oldest else None,
                    held_back=held_back.get(q, 0),
                    next_due_in=upcoming[q] - now if q in upcoming else None,
                )
                for q, counts in figures.items()
            }

        return await self._transact(count, write=False)

    async def queues(self) -> list[str]:
        return await self._transact(
            lambda state: sorted({t["queue"] for t in state["tasks"].values()}), write=False
        )

    async def workers(self) -> list[WorkerInfo]:
        def listed(state: State) -> list[WorkerInfo]:
            return [worker_of(info) for _, info in sorted(state["workers"].items())]

        return await self._transact(listed, write=False)

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Nothing tells one process of another's writes here: look at the file every
        :data:`LOOK_INTERVAL` seconds; a push through this instance wakes at once."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not await self._work_due(queues):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._pushed.wait(), min(LOOK_INTERVAL, remaining))

    async def _work_due(self, queues: Sequence[str]) -> bool:
        def due(state: State) -> bool:
            now = utcnow().timestamp()
            return any(
                t["queue"] in queues and t["status"] in CLAIMABLE and t["run_at"] <= now
                for t in state["tasks"].values()
            )

        return await self._transact(due, write=False)

    # -- results -----------------------------------------------------------------------------

    async def result(self, task_id: str) -> TaskResult | None:
        def read(state: State) -> TaskResult | Task | None:
            kept = state.get("results", {}).get(task_id)
            if kept is not None and kept["expires_at"] > utcnow().timestamp():
                return result_of(kept)
            record = state["tasks"].get(task_id)
            return None if record is None else task_of(record)

        found = await self._transact(read, write=False)
        if found is None:
            raise TaskNotFound(task_id)
        return found if isinstance(found, TaskResult) else outcome_of(found)

    async def wait_for_result(self, task_id: str, timeout: float) -> TaskResult | None:
        return await self._finishes.wait_for_result(
            task_id, timeout, lambda: self.result(task_id), poll_interval=LOOK_INTERVAL
        )

    # -- admin -------------------------------------------------------------------------------

    async def get(self, task_id: str) -> Task | None:
        def find(state: State) -> Task | None:
            record = state["tasks"].get(task_id)
            return None if record is None else task_of(record)

        return await self._transact(find, write=False)

    async def count_finished(self, queue: str, window: Window) -> FinishCounts:
        # Every task read; a real store would read a finish-time index.
        def finishes(state: State) -> list[tuple[TaskStatus, datetime]]:
            tasks = [task_of(r) for r in state["tasks"].values()]
            return [
                (t.status, t.finished_at)
                for t in tasks
                if t.queue == queue and t.status in COUNTED and t.finished_at is not None
            ]

        return tally_times(queue, window, await self._transact(finishes, write=False))

    async def list_page(self, query: TaskQuery) -> list[Task]:
        # The shared filters and order over every task; a real store would read an index.
        def chosen(state: State) -> list[Task]:
            return query.page([task_of(r) for r in state["tasks"].values()])

        return await self._transact(chosen, write=False)

    async def retry(self, task_id: str, *, run_at: datetime | None = None) -> bool:
        again = (run_at or utcnow()).timestamp()

        def revive(record: dict[str, Any]) -> bool:
            if record["status"] not in (TaskStatus.DEAD, TaskStatus.CANCELLED, TaskStatus.RETRYING):
                return False
            record.update(status=TaskStatus.QUEUED, attempts=0, run_at=again, finished_at=None)
            record.update(cancelled_by=None)
            return True

        revived = await self._change_one(task_id, revive, forget=True)
        if revived:
            self._wake()
        return revived

    async def cancel(self, task_id: str, *, by: str = UNKNOWN_ASKER) -> bool:
        def stop(record: dict[str, Any]) -> bool:
            if record["status"] == TaskStatus.RUNNING:
                record.update(cancelled_by=by)  # its worker's heartbeat reads it
                return True
            if record["status"] not in CLAIMABLE:
                return False
            record.update(status=TaskStatus.CANCELLED, finished_at=utcnow().timestamp())
            record.update(cancelled_by=by)
            return True

        cancelled = await self._change_one(task_id, stop)
        if cancelled:
            self._finishes.finished([task_id])
        return cancelled

    async def _change_one(
        self, task_id: str, change: Callable[[dict[str, Any]], bool], *, forget: bool = False
    ) -> bool:
        """Apply ``change`` to one task; ``forget`` its kept result too if it applied."""

        def apply(state: State) -> bool | None:
            record = state["tasks"].get(task_id)
            if record is None:
                return None
            changed = change(record)
            if changed and forget:
                state.get("results", {}).pop(task_id, None)
            return changed

        changed = await self._transact(apply)
        if changed is None:
            raise TaskNotFound(task_id)
        return changed

    async def purge(self, *, queue: str | None, statuses: Sequence[TaskStatus]) -> int:
        def delete(state: State) -> int:
            doomed = [
                task_id
                for task_id, r in state["tasks"].items()
                if r["status"] in PURGEABLE
                and r["status"] in statuses
                and (queue is None or r["queue"] == queue)
            ]
            for task_id in doomed:
                del state["tasks"][task_id]
            return len(doomed)

        return await self._transact(delete)

    async def purge_tasks(self, task_ids: Sequence[str]) -> int:
        def delete(state: State) -> int:
            tasks = state["tasks"]
            doomed = {i for i in task_ids if i in tasks and tasks[i]["status"] in PURGEABLE}
            for task_id in doomed:
                del tasks[task_id]
            return len(doomed)

        return await self._transact(delete)
