"""The codec between Redis hashes and script replies and :class:`~shoal.core.models.Task`."""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from shoal.backends.shared.limiting import Bucket, held_back
from shoal.core.limits import NO_LIMITS, TaskLimits
from shoal.core.models import Lease, NewTask, QueueStats, Task, TaskResult, TaskStatus

Arg = str | bytes | int
"""One argument of a Redis command or script."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Integer microseconds since the epoch: exact, and below 2**53 for Lua's doubles."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def millis(moment: datetime) -> int:
    """Integer milliseconds since the epoch, as PEXPIREAT takes them (a result's expiry:
    a float's precision is plenty, and it is three times quicker than :func:`micros`)."""
    return int(moment.timestamp() * 1000)


def span(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


@functools.lru_cache(maxsize=4096)
def at(us: int) -> datetime:
    """A moment from its microseconds; cached, as the tasks of a batch share their times
    (pushed together, claimed together)."""
    return EPOCH + timedelta(microseconds=us)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def lease_args(leases: Iterable[Lease]) -> list[Arg]:
    return [part for lease in leases for part in (lease.task_id, lease.token, lease.attempt)]


def token_args(leases: Iterable[Lease]) -> list[Arg]:
    """Leases as ack.lua takes them: each token once, with the ids of its tasks."""
    ids: dict[str, list[str]] = {}
    for lease in leases:
        ids.setdefault(lease.token, []).append(lease.task_id)
    args: list[Arg] = []
    for token, group in ids.items():
        args += [token, len(group), *group]
    return args


FIELDS = (
    "id", "queue", "name", "status", "priority", "run_at", "attempts", "max_attempts",
    "created_at", "updated_at", "idempotency_key", "metadata", "last_error",
    "lease_expirations", "worker_id", "finished_at", "token", "cancelled_by", "limits",
)  # fmt: skip
"""The fields scripts export, in the order of FIELDS in lib.lua."""

_TOKEN = FIELDS.index("token")
_STATUSES = {status.value: status for status in TaskStatus}


def exported(reply: Sequence[bytes]) -> list[tuple[Task, str]]:
    """Tasks as scripts export them (see ``exported`` in lib.lua), each with its lease token
    ("" for none): one JSON array of the FIELDS of every task (false where the hash has no
    such field), then the payloads."""
    if not reply:
        return []
    rows = json.loads(reply[0])
    return [
        (row_task(row, payload), str(row[_TOKEN] or ""))
        for row, payload in zip(rows, reply[1:], strict=True)
    ]


def stored(raw: dict[bytes, bytes]) -> Task:
    """A task from its hash, read with HGETALL."""
    fields = {k.decode(): v.decode() for k, v in raw.items() if k != b"payload"}
    trace = fields.get("last_traceback") or None  # fail.lua writes "" for none
    return row_task([fields.get(name, False) for name in FIELDS], raw[b"payload"], trace)


def row_task(row: Sequence[str | bool], payload: bytes, last_traceback: str | None = None) -> Task:
    """A task from the values of FIELDS, in order; ``False`` for a field the hash lacks.

    The traceback is not among FIELDS: claims and listings, which read tasks by FIELDS, do
    not need it, and a retried task's would be kilobytes on every claim."""
    (
        task_id, queue, name, status, priority, run_at, attempts, max_attempts, created_at,
        updated_at, key, metadata, last_error, expirations, worker_id, finished_at, _,
        cancelled_by, limits,
    ) = row  # fmt: skip
    return Task(
        id=str(task_id), queue=str(queue), name=str(name), payload=payload,
        status=_STATUSES[str(status)], priority=int(priority), run_at=at(int(run_at)),
        attempts=int(attempts), max_attempts=int(max_attempts),
        created_at=at(int(created_at)), updated_at=at(int(updated_at)),
        idempotency_key=None if key is False else str(key),
        metadata=json.loads(metadata) if isinstance(metadata, str) else {},
        last_error=None if last_error is False else str(last_error),
        lease_expirations=int(expirations),
        worker_id=None if worker_id is False else str(worker_id),
        finished_at=None if finished_at is False else at(int(finished_at)),
        cancelled_by=None if cancelled_by is False else str(cancelled_by),
        limits=NO_LIMITS if limits is False else limits_of(str(limits)),
        last_traceback=last_traceback,
    )  # fmt: skip


def kept(task_id: str, raw: dict[bytes, bytes]) -> TaskResult:
    """A kept result from its hash (ack.lua, fail.lua), read with HGETALL."""
    fields = {k.decode(): v for k, v in raw.items()}
    error, trace = fields.get("error"), fields.get("traceback")
    return TaskResult(
        task_id,
        _STATUSES[fields["status"].decode()],
        value=fields.get("value"),
        error=None if error is None else error.decode(),
        traceback=trace.decode() if trace else None,
        expires_at=EPOCH + timedelta(milliseconds=int(fields["expires_at"])),
    )


def limits_arg(limits: TaskLimits) -> str:
    """A task's limits as push.lua stores them: the JSON of :meth:`TaskLimits.columns`."""
    return json.dumps(limits.columns()) if limits.limited else ""


def new_task_fields(task: NewTask) -> list[Arg]:
    """The nine fields lib.lua's ``store_new`` takes for a new task (push and ticks alike)."""
    key = "" if task.idempotency_key is None else f"={task.idempotency_key}"
    metadata = json.dumps(dict(task.metadata)) if task.metadata else ""
    return [
        task.id,
        task.name,
        task.payload,
        task.priority,
        micros(task.run_at),
        task.max_attempts,
        key,
        metadata,
        limits_arg(task.limits),
    ]


def limits_of(stored: str) -> TaskLimits:
    return TaskLimits.from_columns(*json.loads(stored))


def stats(queue: str, reply: Sequence[Any]) -> QueueStats:
    """A stats.lua reply: ready, scheduled, running, dead, oldest run_at, now, total, what
    the limits hold back from (JSON, or empty), and the first scheduled run_at (or -1)."""
    ready, scheduled, running, dead, oldest, now, _, limited, upcoming = reply
    age = None if oldest < 0 else max(0.0, (now - oldest) / 1_000_000)
    held = _held_back(queue, json.loads(limited), now / 1_000_000) if limited else 0
    due_in = None if upcoming < 0 else max(0.0, (upcoming - now) / 1_000_000)
    return QueueStats(
        queue,
        ready,
        scheduled,
        running,
        dead,
        oldest_ready_age=age,
        held_back=held,
        next_due_in=due_in,
    )


def _held_back(queue: str, limited: dict[str, Any], now: float) -> int:
    groups = [(queue, limits_of(raw), count) for raw, count in limited["groups"]]
    buckets = {
        (queue, key): Bucket(tokens, at / 1_000_000)
        for key, (tokens, at) in limited["buckets"].items()
    }
    running = {(queue, key): count for key, count in limited["running"].items()}
    return held_back(groups, buckets, running, now).get(queue, 0)
