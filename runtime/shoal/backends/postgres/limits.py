"""Limits on PostgreSQL: the held-back figure of the stats, from what the stats statement
returns.

The claim's side is SQL (``pick_limited`` in migration 0006, chosen by the claim statements
of ``queries.sql`` while limited tasks are due); here only the stats' figure is computed,
by the shared rule, from the ``limited`` column of the stats statement (one statement per
measurement, as before limits: the operator's load on the database does not grow).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from shoal.backends.shared.limiting import Bucket, BucketKey, SlotKey, held_back
from shoal.core.limits import LIMIT_COLUMNS, TaskLimits


def limits_of(row: Mapping[str, Any]) -> TaskLimits:
    return TaskLimits.from_columns(*(row[column] for column in LIMIT_COLUMNS))


def held(queue: str, limited: str | None, now: float) -> int:
    """Ready tasks of ``queue`` the limits hold back, from the stats row's ``limited``: JSON
    arrays of the five limit columns, the ready tasks, the bucket's tokens and time, and
    the running tasks of the key."""
    if limited is None:
        return 0
    buckets: dict[BucketKey, Bucket] = {}
    running: dict[SlotKey, int] = {}
    groups = []
    for *columns, tasks, tokens, at, busy in json.loads(limited):
        limits = TaskLimits.from_columns(*columns)
        if limits.rate_key is not None and tokens is not None:
            buckets[queue, limits.rate_key] = Bucket(tokens, at)
        if limits.concurrency_key is not None:
            running[queue, limits.concurrency_key] = busy
        groups.append((queue, limits, tasks))
    return held_back(groups, buckets, running, now).get(queue, 0)
