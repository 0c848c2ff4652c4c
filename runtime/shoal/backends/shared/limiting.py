"""Which limited tasks a claim may take, and how many ready tasks the limits hold back.

The rule, alike on every backend: a claim walks the due tasks in claim order; a task without
limits is taken, a limited one only while its rate bucket holds a token and its concurrency
key has a free slot (running tasks of the queue with that key, fewer than the limit); each
taken task spends a token and a slot. The claim stops at its limit, or after examining
:data:`SCAN` candidates (so a wall of held-back tasks costs a bounded claim, and tasks
behind it still flow). Buckets and keys are per queue.

Memory, SQLite and the example plugin run :func:`admit` over the candidates they read in the
claim's transaction and store the buckets it returns; PostgreSQL (``pick_limited`` of its
migration 0006) and Redis (``claim.lua``) apply the same rule inside the store, in one step.
:func:`held_back` is the stats' figure: the same walk over every ready limited task, without
spending anything.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shoal.core.limits import Rate, TaskLimits

SCAN = 200
"""Candidates a claim examines beyond its limit, at most: the bound on a claim's cost when
limits hold back many tasks ahead of those that could run (tasks behind more held-back ones
than this wait until those drain). Workers under rate limits claim again every few tens of
milliseconds, so this is read that often: 1,000 kept Redis from sustaining 100/s for four
workers on two loaded cores (bench/limits.py)."""

BucketKey = tuple[str, str]
"""(queue, rate key)."""
SlotKey = tuple[str, str]
"""(queue, concurrency key)."""


@dataclass(frozen=True, slots=True)
class Bucket:
    """A rate bucket as stored: tokens left when last drawn from, at ``at`` (epoch seconds)."""

    tokens: float
    at: float


@dataclass(frozen=True, slots=True)
class Candidate:
    id: str
    queue: str
    limits: TaskLimits


@dataclass(frozen=True, slots=True)
class Admitted:
    ids: list[str]
    """The tasks to lease, in the order given."""
    buckets: dict[BucketKey, Bucket]
    """Every bucket drawn from, as it must be stored now."""


class _Allowance:
    """What the limits still allow during one walk: buckets refilled on first sight."""

    def __init__(
        self, buckets: Mapping[BucketKey, Bucket], running: Mapping[SlotKey, int], now: float
    ) -> None:
        self._stored = buckets
        self._running = running
        self._now = now
        self.tokens: dict[BucketKey, float] = {}
        self._slots: dict[SlotKey, int] = {}

    def allows(self, queue: str, limits: TaskLimits, wanted: int = 1) -> int:
        """How many of ``wanted`` tasks with these limits may start now."""
        allowed = wanted
        if limits.rate_key is not None and limits.rate is not None:
            allowed = min(allowed, math.floor(self._tokens(queue, limits.rate_key, limits.rate)))
        if limits.concurrency_key is not None and limits.concurrency_limit is not None:
            allowed = min(
                allowed, self._free(queue, limits.concurrency_key, limits.concurrency_limit)
            )
        return max(0, allowed)

    def spend(self, queue: str, limits: TaskLimits, count: int = 1) -> None:
        if limits.rate_key is not None:
            self.tokens[queue, limits.rate_key] -= count
        if limits.concurrency_key is not None:
            self._slots[queue, limits.concurrency_key] -= count

    def spent(self) -> dict[BucketKey, Bucket]:
        """The buckets drawn from, to store. Never dated before their stored time: a claim
        that waited for the lock with an older clock reading must not credit the same
        refill twice."""
        return {
            key: Bucket(tokens, max(self._now, self._stored[key].at if key in self._stored else 0))
            for key, tokens in self.tokens.items()
        }

    def _tokens(self, queue: str, key: str, rate: Rate) -> float:
        if (queue, key) not in self.tokens:
            stored = self._stored.get((queue, key))
            self.tokens[queue, key] = (
                float(rate.burst)
                if stored is None
                else rate.refilled(stored.tokens, self._now - stored.at)
            )
        return self.tokens[queue, key]

    def _free(self, queue: str, key: str, limit: int) -> int:
        if (queue, key) not in self._slots:
            self._slots[queue, key] = limit - self._running.get((queue, key), 0)
        return self._slots[queue, key]


def admit(
    candidates: Iterable[Candidate],
    limit: int,
    buckets: Mapping[BucketKey, Bucket],
    running: Mapping[SlotKey, int],
    now: float,
) -> Admitted:
    """The tasks a claim of ``limit`` takes from ``candidates`` (due, in claim order).

    ``buckets`` holds the stored state of the buckets the candidates name (a bucket never
    stored starts full); ``running`` the running tasks per concurrency key (missing: none).
    """
    allowance = _Allowance(buckets, running, now)
    chosen: list[str] = []
    for candidate in candidates:
        if len(chosen) >= limit:
            break
        if candidate.limits.limited:
            if not allowance.allows(candidate.queue, candidate.limits):
                continue
            allowance.spend(candidate.queue, candidate.limits)
        chosen.append(candidate.id)
    return Admitted(chosen, allowance.spent())


def held_back(
    groups: Iterable[tuple[str, TaskLimits, int]],
    buckets: Mapping[BucketKey, Bucket],
    running: Mapping[SlotKey, int],
    now: float,
) -> dict[str, int]:
    """Per queue, how many ready limited tasks the limits hold back now.

    ``groups`` counts the ready tasks of each queue by their limits (queue, limits, count).
    """
    allowance = _Allowance(buckets, running, now)
    held: dict[str, int] = {}
    for queue, limits, count in groups:
        allowed = allowance.allows(queue, limits, count)
        allowance.spend(queue, limits, allowed)
        held[queue] = held.get(queue, 0) + count - allowed
    return held


def candidates_needed(limit: int) -> int:
    """How many due tasks a claim reads when some are limited: its limit and :data:`SCAN`."""
    return limit + SCAN
