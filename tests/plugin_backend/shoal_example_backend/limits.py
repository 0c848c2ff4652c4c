"""Rate buckets and concurrency keys in the JSON file, by shoal's shared rule
(:mod:`shoal.backends.shared.limiting`): the backend only reads and stores the state."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from shoal.backends.shared.limiting import (
    Bucket,
    BucketKey,
    Candidate,
    SlotKey,
    admit,
    candidates_needed,
    held_back,
)
from shoal.core.limits import TaskLimits
from shoal.core.models import TaskStatus

State = dict[str, dict[str, Any]]


def limits_of(record: dict[str, Any]) -> TaskLimits:
    columns = record.get("limits")
    return TaskLimits() if columns is None else TaskLimits.from_columns(*columns)


def admitted(state: State, due: Sequence[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """The records of ``due`` (claim order) a claim of ``limit`` takes; buckets stored."""
    if not any(record.get("limits") for record in due):
        return list(due[:limit])
    candidates = [
        Candidate(r["id"], r["queue"], limits_of(r)) for r in due[: candidates_needed(limit)]
    ]
    chosen = admit(candidates, limit, _buckets(state), _running(state), time.time())
    stored = state.setdefault("buckets", {})
    for (queue, key), bucket in chosen.buckets.items():
        stored[f"{queue}\x1f{key}"] = [bucket.tokens, bucket.at]
    return [state["tasks"][task_id] for task_id in chosen.ids]


def held(state: State, ready: Sequence[dict[str, Any]]) -> dict[str, int]:
    groups = [(r["queue"], limits_of(r), 1) for r in ready if r.get("limits")]
    return held_back(groups, _buckets(state), _running(state), time.time()) if groups else {}


def _buckets(state: State) -> dict[BucketKey, Bucket]:
    found: dict[BucketKey, Bucket] = {}
    for name, (tokens, at) in state.get("buckets", {}).items():
        queue, key = name.split("\x1f", 1)
        found[queue, key] = Bucket(tokens, at)
    return found


def _running(state: State) -> dict[SlotKey, int]:
    running: dict[SlotKey, int] = {}
    for record in state["tasks"].values():
        key = limits_of(record).concurrency_key
        if key is not None and record["status"] == TaskStatus.RUNNING:
            running[record["queue"], key] = running.get((record["queue"], key), 0) + 1
    return running
