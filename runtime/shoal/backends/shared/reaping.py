"""The reap rule: what becomes of a running task whose lease expired, decided once.

An expired lease counts one more lease expiration on its task. The task goes back to its
queue while it has an attempt left (the claim charged the attempt it was running, so it
runs next with a new one); once its attempts are spent it ends dead with
:func:`lease_expired_message` as its reason, so that a task that kills its worker every time
cannot loop forever.

The memory, SQLite and PostgreSQL backends read the expired tasks, ask :func:`judge` and
apply the verdicts in the same transaction. Redis decides inside its reap script, which is
one round trip and atomic on the server; it is given the rule's parameters from here
(:data:`REQUEUE_MIN_ATTEMPTS_LEFT` and the message around its count,
:func:`lease_expired_message_parts`), so the words and the rule have one home.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shoal.core.models import ReapReport, TaskStatus

LEASE_EXPIRED = "lease expired {} times: the worker running it died or stalled"
"""The reason recorded on a task whose leases kept expiring until its attempts ran out."""

REQUEUE_MIN_ATTEMPTS_LEFT = 1
"""Attempts a task must have left (``max_attempts - attempts``) to be queued again."""


def lease_expired_message(expirations: int) -> str:
    return LEASE_EXPIRED.format(expirations)


def lease_expired_message_parts() -> tuple[str, str]:
    """The message before and after its count, for a store that writes the count itself."""
    before, after = LEASE_EXPIRED.split("{}")
    return before, after


@dataclass(frozen=True, slots=True)
class Expired:
    """What a store read of a running task whose lease expired."""

    task_id: str
    attempts: int
    """Attempts charged so far, the expired one included."""
    max_attempts: int
    lease_expirations: int
    """Lease expirations counted before this one."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the store writes for one expired lease."""

    task_id: str
    status: TaskStatus
    """``queued`` or ``dead``."""
    lease_expirations: int
    """The new count, this expiration included."""
    error: str | None
    """The reason a dead task records; ``None`` when it is queued (it keeps its last error)."""


def spent(attempts: int, max_attempts: int) -> bool:
    """Whether a task has no attempt left to be queued again with."""
    return max_attempts - attempts < REQUEUE_MIN_ATTEMPTS_LEFT


def judge(expired: Iterable[Expired]) -> list[Verdict]:
    """The verdict on each expired lease, in the order given."""
    verdicts = []
    for task in expired:
        expirations = task.lease_expirations + 1
        if spent(task.attempts, task.max_attempts):
            message = lease_expired_message(expirations)
            verdicts.append(Verdict(task.task_id, TaskStatus.DEAD, expirations, message))
        else:
            verdicts.append(Verdict(task.task_id, TaskStatus.QUEUED, expirations, None))
    return verdicts


def report(requeued: Iterable[str], dead: Iterable[str]) -> ReapReport:
    """A reap's report, ids sorted whatever order the store found them in."""
    return ReapReport(tuple(sorted(requeued)), tuple(sorted(dead)))


def report_verdicts(verdicts: Iterable[Verdict]) -> ReapReport:
    verdicts = list(verdicts)
    return report(
        (v.task_id for v in verdicts if v.status is TaskStatus.QUEUED),
        (v.task_id for v in verdicts if v.status is TaskStatus.DEAD),
    )
