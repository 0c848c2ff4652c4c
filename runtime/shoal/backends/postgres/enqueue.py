"""Enqueue for the ``postgresql://`` backend: one statement per batch, idempotency keys.

A batch is one ``INSERT ... SELECT FROM unnest(...)`` statement whose rows are sent as one
array per column, so pushing 10,000 tasks costs one round trip. An idempotency key is
unique per queue among unfinished tasks (a partial unique index), so a finished task frees
its key.

With :attr:`OnConflict.RAISE` the statement is a plain INSERT: a reused key makes the
whole statement fail, so nothing is stored, and a second query (on that error path only)
names the keys. With :attr:`OnConflict.SKIP` it is ``INSERT ... ON CONFLICT DO NOTHING``
returning, for each skipped row, the id of the task holding the key.

Within the batch, keys are resolved before anything is sent
(:mod:`shoal.backends.shared.idempotency`): a task repeating an earlier task's key never
reaches the table. On a caller's connection the statement runs inside a savepoint (see
:mod:`.sessions`): a conflict rolls back the savepoint only, and the caller's transaction
stays usable.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from shoal.backends.base import OnConflict
from shoal.backends.postgres.sessions import KeyTaken, Session
from shoal.backends.shared.idempotency import Key, conflict, key_of, resolve
from shoal.core.errors import IdempotencyConflict
from shoal.core.limits import LIMIT_COLUMNS
from shoal.core.models import NewTask

_RESOLVE_ATTEMPTS = 3
"""How often a skipped task's holder is looked up before giving up (see :func:`_skip`)."""


async def enqueue(
    session: Session, sql: Mapping[str, str], tasks: Sequence[NewTask], on_conflict: OnConflict
) -> list[str]:
    """Store ``tasks`` and return their ids (or the holders' ids when skipping)."""
    batch = resolve(tasks, {})  # the batch against itself; the table decides the rest
    if on_conflict is OnConflict.SKIP:
        ids = await _skip(session, sql, batch.fresh)
        return [ids[task_id] for task_id in batch.ids]
    if batch.conflicts:  # the batch reuses its own key: nothing to send, only holders to name
        raise await _conflict(session, sql, tasks, batch.conflicts)
    try:
        async with session.atomic():
            await session.execute(sql["push"], *_columns(tasks))
    except KeyTaken as exc:
        raise await _conflict(session, sql, tasks, ()) from exc
    return [task.id for task in tasks]


async def _skip(
    session: Session, sql: Mapping[str, str], tasks: Sequence[NewTask]
) -> dict[str, str]:
    """Insert what is free, map every task id to the id that now holds its place."""
    async with session.atomic():
        rows = await session.fetch(sql["push_skip"], *_columns(tasks))
    ids: dict[str, str | None] = {
        row["id"]: row["id"] if row["stored"] else row["holder"] for row in rows
    }
    for _ in range(_RESOLVE_ATTEMPTS):
        pending = [task for task in tasks if ids[task.id] is None]
        if not pending:
            return {task_id: holder for task_id, holder in ids.items() if holder is not None}
        # The holder committed after our statement began, so the statement could not see
        # it; or it has finished since, freeing the key: store those tasks after all.
        held = await _holders(session, sql, pending)
        free = [task for task in pending if _key(task) not in held]
        ids.update({task.id: held[_key(task)] for task in pending if _key(task) in held})
        if free:
            async with session.atomic():
                rows = await session.fetch(sql["push_skip"], *_columns(free))
            ids.update({row["id"]: row["id"] if row["stored"] else row["holder"] for row in rows})
    raise conflict(tasks, {_key(task) for task in tasks if ids[task.id] is None})


async def _holders(
    session: Session, sql: Mapping[str, str], tasks: Sequence[NewTask]
) -> dict[Key, str]:
    keyed = [task for task in tasks if task.idempotency_key is not None]
    rows = await session.fetch(
        sql["holders"], [t.queue for t in keyed], [t.idempotency_key for t in keyed]
    )
    return {(row["queue"], row["idempotency_key"]): row["id"] for row in rows}


async def _conflict(
    session: Session, sql: Mapping[str, str], tasks: Sequence[NewTask], repeated: Collection[Key]
) -> IdempotencyConflict:
    keys = set(await _holders(session, sql, tasks)) | set(repeated)
    if not keys:  # the holder finished meanwhile: name the batch's keys all the same
        keys = {key for key in map(key_of, tasks) if key is not None}
    return conflict(tasks, keys)


def _key(task: NewTask) -> Key:
    return (task.queue, task.idempotency_key or "")


def _columns(tasks: Sequence[NewTask]) -> list[list[Any]]:
    """One array per column, in the order the push statements unnest them."""
    columns: list[list[Any]] = [
        [getattr(task, name) for task in tasks]
        for name in (
            "id",
            "queue",
            "name",
            "payload",
            "priority",
            "run_at",
            "max_attempts",
            "idempotency_key",
        )
    ]
    columns.append([json.dumps(dict(task.metadata)) for task in tasks])
    limits = [task.limits.columns() for task in tasks]
    columns.extend([row[i] for row in limits] for i in range(len(LIMIT_COLUMNS)))
    return columns
