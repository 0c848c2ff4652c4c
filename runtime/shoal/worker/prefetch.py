"""How many tasks a worker claims ahead of its free slots.

Claiming ahead lets the next batch be at hand the moment slots free up, and makes batches
larger: with tasks of a millisecond or less, the round trips of claims and acks, not the
tasks, are what a worker spends its time on (bench/RESULTS.md). But a task claimed ahead
waits behind running ones, where an idle worker (a pod the operator just started) could
have run it. So, unless told otherwise, a worker holds back at most :data:`HORIZON` seconds
of work: as many tasks as its slots finish in that time, judged by how long recent tasks
ran. Short tasks get big batches; tasks of a second or more get none. The same bound holds
for priorities: a more urgent task pushed after a claim waits about that long behind the
tasks it holds.
"""

from __future__ import annotations

HORIZON = 0.02
"""Seconds of work, per slot, a worker may hold claimed and not started."""

MOST_PER_SLOT = 10
"""Cap, per slot, on tasks claimed ahead, however short they are: batches stop growing in
benefit well before it (bench/RESULTS.md), and each held task is a lease to renew."""

SMOOTHING = 0.05
"""Weight of the newest run time in the running average (the last ~20 tasks count)."""


def claim_ahead(concurrency: int, setting: int | None, typical_run_time: float | None) -> int:
    """Tasks to claim beyond free slots: ``setting`` when given, else automatic.

    Automatic is none until some task has finished (nothing is known about run times yet),
    then ``concurrency * HORIZON / typical_run_time``, at most ``MOST_PER_SLOT`` per slot.
    """
    if setting is not None:
        return setting
    if typical_run_time is None:
        return 0
    most = concurrency * MOST_PER_SLOT
    if typical_run_time * most <= concurrency * HORIZON:
        return most
    return int(concurrency * HORIZON / typical_run_time)


def updated_run_time(typical: float | None, latest: float) -> float:
    """The running average of run times, with ``latest`` taken in."""
    if typical is None:
        return latest
    return typical + SMOOTHING * (latest - typical)
