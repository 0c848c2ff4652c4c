"""Idempotency keys: which tasks of a batch are new and which reuse a held key, decided once.

A key is unique per queue among unfinished tasks. A task whose key an unfinished task holds,
or an earlier task of the same batch takes, conflicts with that holder. Under
:attr:`OnConflict.RAISE` a batch with any conflict stores nothing and raises
:class:`IdempotencyConflict` naming every conflicting key; under :attr:`OnConflict.SKIP` the
rest is stored and each conflicting task's place holds its holder's id.

The memory and SQLite backends read the keys held and :func:`resolve` the batch against
them inside their write. PostgreSQL and Redis decide against stored tasks atomically in SQL
or Lua; they resolve the batch against itself first (``resolve(tasks, {})``), send its
``fresh`` tasks only, and build their reply and error here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from shoal.backends.base import OnConflict
from shoal.core.errors import IdempotencyConflict
from shoal.core.models import NewTask

Key = tuple[str, str]
"""A queue and an idempotency key: keys are unique per queue."""


def key_of(task: NewTask) -> Key | None:
    return None if task.idempotency_key is None else (task.queue, task.idempotency_key)


@dataclass(frozen=True, slots=True)
class Resolution:
    """How one batch meets the keys already held."""

    tasks: Sequence[NewTask]
    ids: tuple[str, ...]
    """Per task, in order: its own id, or the id of the task holding its key."""
    fresh: tuple[NewTask, ...]
    """What to store: the tasks without a key, and the first taker of each free key."""
    conflicts: Mapping[Key, str]
    """Each conflicting key, with the id of the task holding it (stored, or earlier in the
    batch)."""

    def reply(self, on_conflict: OnConflict) -> list[str]:
        """What ``push`` returns; under ``RAISE`` a conflict raises instead."""
        if self.conflicts and on_conflict is OnConflict.RAISE:
            raise conflict(self.tasks, self.conflicts)
        return list(self.ids)


def resolve(tasks: Sequence[NewTask], held: Mapping[Key, str]) -> Resolution:
    """Resolve ``tasks`` against ``held`` (key to the id of the unfinished task holding it)
    and against one another."""
    holders = dict(held)
    ids: list[str] = []
    fresh: list[NewTask] = []
    conflicts: dict[Key, str] = {}
    for task in tasks:
        key = key_of(task)
        if key is not None and key in holders:
            conflicts[key] = holders[key]
            ids.append(holders[key])
            continue
        if key is not None:
            holders[key] = task.id
        fresh.append(task)
        ids.append(task.id)
    return Resolution(tasks, tuple(ids), tuple(fresh), conflicts)


def conflict(tasks: Sequence[NewTask], keys: Collection[Key]) -> IdempotencyConflict:
    """The error for a batch whose ``keys`` conflict: it names them all, and the queue of the
    first task in the batch that holds one of them."""
    first = next((t.queue for t in tasks if key_of(t) in keys), tasks[0].queue)
    return IdempotencyConflict(first, sorted({key for _, key in keys}), len(tasks))
