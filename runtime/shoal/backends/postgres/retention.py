"""Retention on PostgreSQL: bounded deletes of finished tasks during reap."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from shoal.backends.postgres.rows import affected
from shoal.backends.shared.retention import PRUNE_BATCH, PRUNE_PER_REAP
from shoal.core.retention import Expiry


async def prune(conn: asyncpg.Connection, statement: str, rules: Sequence[Expiry]) -> int:
    """Delete what ``rules`` let go with ``statement`` (``prune_finished``): statements of at
    most PRUNE_BATCH rows, each its own transaction so that no long one holds vacuum back,
    until one deletes fewer or the reap's share is spent. Returns how many were deleted."""
    deleted = 0
    while rules and deleted < PRUNE_PER_REAP:
        limit = min(PRUNE_BATCH, PRUNE_PER_REAP - deleted)
        count = affected(
            await conn.execute(
                statement,
                [r.queue for r in rules],
                [r.status.value for r in rules],
                [r.seconds for r in rules],
                limit,
            )
        )
        deleted += count
        if count < limit:
            break
    return deleted
