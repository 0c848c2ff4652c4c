"""Rate buckets and concurrency keys in a SQLite claim (the rule is
:mod:`shoal.backends.shared.limiting`'s).

Everything here runs inside the claim's ``BEGIN IMMEDIATE`` transaction, which holds the
file's write lock: reading the buckets and the running counts, choosing, and storing the
buckets are one atomic step for every process on the file. A claim first asks
``limited_due`` (one seek into an index empty while no limits are in use) and only then
takes this path.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence

from shoal.backends.shared.limiting import (
    Bucket,
    BucketKey,
    Candidate,
    SlotKey,
    admit,
    candidates_needed,
    held_back,
)
from shoal.backends.sqlfiles import queries
from shoal.backends.sqlite.support import limits_of

_SQL = queries("shoal.backends.sqlite")


def limited_due(db: sqlite3.Connection, queues: Sequence[str], now: float) -> bool:
    return any(db.execute(_SQL["limited_due"], {"queue": q, "now": now}).fetchone() for q in queues)


def admitted(db: sqlite3.Connection, queues: Sequence[str], limit: int, now: float) -> list[str]:
    """The ids this claim takes, best first; the buckets drawn from are stored.

    ``now`` decides what is due; buckets refill to the clock read here, inside the write
    lock, after any wait for it.
    """
    rows = [
        row
        for queue in queues
        for row in db.execute(
            _SQL["limited_candidates"],
            {"queue": queue, "now": now, "limit": candidates_needed(limit)},
        )
    ]
    rows.sort(key=lambda row: (-row["priority"], row["run_at"], row["id"]))
    candidates = (Candidate(row["id"], row["queue"], limits_of(row)) for row in rows)
    chosen = admit(candidates, limit, _buckets(db, queues), _running(db, queues), time.time())
    db.executemany(
        _SQL["store_bucket"],
        [
            {"queue": queue, "key": key, "tokens": bucket.tokens, "at": bucket.at}
            for (queue, key), bucket in chosen.buckets.items()
        ],
    )
    return chosen.ids


def held(db: sqlite3.Connection, queues: Sequence[str], now: float) -> dict[str, int]:
    """Per queue, the ready tasks the limits hold back now."""
    arguments = {"queues": json.dumps(list(queues)), "now": now}
    groups = [
        (row["queue"], limits_of(row), row["tasks"])
        for row in db.execute(_SQL["limited_ready"], arguments)
    ]
    if not groups:
        return {}
    return held_back(groups, _buckets(db, queues), _running(db, queues), now)


def _buckets(db: sqlite3.Connection, queues: Sequence[str]) -> dict[BucketKey, Bucket]:
    rows = db.execute(_SQL["rate_buckets"], {"queues": json.dumps(list(queues))})
    return {(row["queue"], row["key"]): Bucket(row["tokens"], row["at"]) for row in rows}


def _running(db: sqlite3.Connection, queues: Sequence[str]) -> dict[SlotKey, int]:
    rows = db.execute(_SQL["running_keys"], {"queues": json.dumps(list(queues))})
    return {(row["queue"], row["concurrency_key"]): row["running"] for row in rows}
