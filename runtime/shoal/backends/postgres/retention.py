"""Retention on PostgreSQL: bounded deletes of finished tasks, and of expired results,
during reap."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import asyncpg

from shoal.backends.postgres.rows import affected
from shoal.backends.shared.retention import PRUNE_BATCH, PRUNE_PER_REAP
from shoal.core.retention import Expiry


async def prune(conn: asyncpg.Connection, statement: str, rules: Sequence[Expiry]) -> int:
    """Delete what ``rules`` let go with ``statement`` (``prune_finished``). Returns how many
    were deleted."""
    if not rules:
        return 0
    return await _bounded(
        lambda limit: conn.execute(
            statement,
            [r.queue for r in rules],
            [r.status.value for r in rules],
            [r.seconds for r in rules],
            limit,
        )
    )


async def expire_results(conn: asyncpg.Connection, statement: str) -> int:
    """Delete kept results past their ``expires_at`` with ``statement``
    (``expire_results``): the backend's side of a result's time to live."""
    return await _bounded(lambda limit: conn.execute(statement, limit))


async def _bounded(delete: Callable[[int], Awaitable[str]]) -> int:
    """Run ``delete(limit)``: statements of at most PRUNE_BATCH rows, each its own
    transaction so that no long one holds vacuum back, until one deletes fewer or the
    reap's share is spent. Returns how many rows went."""
    deleted = 0
    while deleted < PRUNE_PER_REAP:
        limit = min(PRUNE_BATCH, PRUNE_PER_REAP - deleted)
        count = affected(await delete(limit))
        deleted += count
        if count < limit:
            break
    return deleted
