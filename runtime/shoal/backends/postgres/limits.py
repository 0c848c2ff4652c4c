"""Limits on PostgreSQL: the held-back figure of the stats, from the rows that count it.

The claim's side is SQL (``pick_limited`` in migration 0006, chosen by the claim statements
of ``queries.sql`` while limited tasks are due); here only the stats' figure is computed,
by the shared rule, from one statement's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shoal.backends.shared.limiting import Bucket, BucketKey, SlotKey, held_back
from shoal.core.limits import LIMIT_COLUMNS, TaskLimits


def limits_of(row: Mapping[str, Any]) -> TaskLimits:
    return TaskLimits.from_columns(*(row[column] for column in LIMIT_COLUMNS))


def held(rows: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Per queue, ready tasks the limits hold back (rows of ``limited_ready``)."""
    if not rows:
        return {}
    buckets: dict[BucketKey, Bucket] = {}
    running: dict[SlotKey, int] = {}
    for row in rows:
        if row["rate_key"] is not None and row["tokens"] is not None:
            buckets[row["queue"], row["rate_key"]] = Bucket(row["tokens"], row["bucket_at"])
        if row["concurrency_key"] is not None:
            running[row["queue"], row["concurrency_key"]] = row["running"]
    groups = [(row["queue"], limits_of(row), row["tasks"]) for row in rows]
    return held_back(groups, buckets, running, rows[0]["now"])
