"""Rows of the ``postgresql://`` backend to shoal's records, and leases to query parameters."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from shoal.backends.postgres.limits import limits_of
from shoal.core.limits import NO_LIMITS
from shoal.core.models import Lease, Task, TaskStatus


def lease_columns(leases: Sequence[Lease]) -> tuple[list[str], list[str], list[int]]:
    return (
        [lease.task_id for lease in leases],
        [lease.token for lease in leases],
        [lease.attempt for lease in leases],
    )


def affected(status: str) -> int:
    """Rows touched, from a command tag such as ``DELETE 12``."""
    return int(status.rsplit(" ", 1)[-1])


def task_of(row: Mapping[str, Any]) -> Task:
    # Written out field by field: a claim decodes every row it takes, and this is the
    # worker's per-task cost on PostgreSQL (bench/RESULTS.md).
    metadata = row["metadata"]
    return Task(
        id=row["id"],
        queue=row["queue"],
        name=row["name"],
        payload=row["payload"],
        status=_STATUSES[row["status"]],
        priority=row["priority"],
        run_at=row["run_at"],
        attempts=row["attempts"],
        max_attempts=row["max_attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        idempotency_key=row["idempotency_key"],
        metadata={} if metadata == "{}" else json.loads(metadata),
        last_error=row["last_error"],
        lease_expirations=row["lease_expirations"],
        worker_id=row["worker_id"],
        finished_at=row["finished_at"],
        cancelled_by=row["cancelled_by"],
        limits=NO_LIMITS
        if row["rate_key"] is None and row["concurrency_key"] is None
        else limits_of(row),
        last_traceback=row["last_traceback"],
    )


_STATUSES = {status.value: status for status in TaskStatus}
