"""Tasks and workers as the JSON file holds them: plain dicts, times as epoch seconds."""

from __future__ import annotations

import base64
from typing import Any

from shoal.core.models import (
    Lease,
    NewTask,
    Task,
    TaskResult,
    TaskStatus,
    WorkerInfo,
    from_epoch,
)
from shoal_example_backend.limits import limits_of


def holds(record: dict[str, Any], lease: Lease) -> bool:
    """Whether ``lease`` still fences the task: running, same token, same attempt."""
    return bool(
        record["status"] == TaskStatus.RUNNING
        and record["token"] == lease.token
        and record["attempts"] == lease.attempt
    )


def record_of(new: NewTask, now: float) -> dict[str, Any]:
    return {
        "id": new.id,
        "queue": new.queue,
        "name": new.name,
        "payload": base64.b64encode(new.payload).decode(),
        "status": TaskStatus.QUEUED,
        "priority": new.priority,
        "run_at": new.run_at.timestamp(),
        "attempts": 0,
        "max_attempts": new.max_attempts,
        "created_at": now,
        "updated_at": now,
        "idempotency_key": new.idempotency_key,
        "metadata": dict(new.metadata),
        "last_error": None,
        "last_traceback": None,
        "lease_expirations": 0,
        "worker_id": None,
        "finished_at": None,
        "token": None,
        "expires_at": None,
        "limits": list(new.limits.columns()) if new.limits.limited else None,
    }


def task_of(record: dict[str, Any]) -> Task:
    finished = record["finished_at"]
    return Task(
        id=record["id"],
        queue=record["queue"],
        name=record["name"],
        payload=base64.b64decode(record["payload"]),
        status=TaskStatus(record["status"]),
        priority=record["priority"],
        run_at=from_epoch(record["run_at"]),
        attempts=record["attempts"],
        max_attempts=record["max_attempts"],
        created_at=from_epoch(record["created_at"]),
        updated_at=from_epoch(record["updated_at"]),
        idempotency_key=record["idempotency_key"],
        metadata=record["metadata"],
        last_error=record["last_error"],
        lease_expirations=record["lease_expirations"],
        worker_id=record["worker_id"],
        finished_at=None if finished is None else from_epoch(finished),
        cancelled_by=record.get("cancelled_by"),
        limits=limits_of(record),
        last_traceback=record.get("last_traceback"),
    )


def result_of(record: dict[str, Any]) -> TaskResult:
    value = record["value"]
    return TaskResult(
        task_id=record["task_id"],
        status=TaskStatus(record["status"]),
        value=None if value is None else base64.b64decode(value),
        error=record["error"],
        traceback=record["traceback"],
        expires_at=from_epoch(record["expires_at"]),
    )


def kept_record(
    task_id: str,
    status: TaskStatus,
    expires_at: float,
    *,
    value: bytes | None = None,
    error: str | None = None,
    traceback: str | None = None,
) -> dict[str, Any]:
    return {
        "task_id": task_id,
        "status": status,
        "value": None if value is None else base64.b64encode(value).decode(),
        "error": error,
        "traceback": traceback,
        "expires_at": expires_at,
    }


def worker_of(info: dict[str, Any]) -> WorkerInfo:
    return WorkerInfo(
        id=info["id"],
        host=info["host"],
        pid=info["pid"],
        queues=tuple(info["queues"]),
        concurrency=info["concurrency"],
        in_flight=info["in_flight"],
        started_at=from_epoch(info["started_at"]),
        last_seen=from_epoch(info["last_seen"]),
        version=info.get("version", ""),
    )
