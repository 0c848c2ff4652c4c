"""Retention on SQLite: bounded deletes of finished tasks during reap."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from shoal.backends.shared.retention import PRUNE_BATCH, PRUNE_PER_REAP
from shoal.backends.sqlfiles import queries
from shoal.backends.sqlite.support import immediate
from shoal.core.retention import Expiry

_PRUNE = queries("shoal.backends.sqlite")["prune_finished"]


def prune(db: sqlite3.Connection, rules: Sequence[Expiry], now: float) -> int:
    """Delete what ``rules`` let go, one batch per transaction so that other processes get
    the write lock in between; returns how many tasks were deleted."""
    deleted = 0
    for rule in rules:
        while deleted < PRUNE_PER_REAP:
            limit = min(PRUNE_BATCH, PRUNE_PER_REAP - deleted)
            arguments = {
                "queue": rule.queue,
                "status": rule.status.value,
                "cutoff": now - rule.seconds,
                "limit": limit,
            }
            with immediate(db):
                count = db.execute(_PRUNE, arguments).rowcount
            deleted += count
            if count < limit:
                break
    return deleted
