"""Retention on Redis: a bounded sweep of the finish-time indexes during reap.

Every finished task is in ``{prefix:queue}:f:<status>`` scored by when it finished
(``lua/lib.lua``); ``expire.lua`` deletes the task hashes and index entries of those past
their time, oldest first, so memory stays bounded however many tasks a queue has run. Tasks
that finished before these sets existed are not in them: ``shoal jobs purge`` removes them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shoal.backends.redis import codec as rs
from shoal.backends.redis.codec import Arg
from shoal.backends.redis.link import Link, Script
from shoal.backends.shared.retention import PRUNE_BATCH, PRUNE_PER_REAP
from shoal.core.retention import Retention, expiries


async def expire(link: Link, base: Callable[[str], str], retention: Mapping[str, Retention]) -> int:
    """One ``expire.lua`` call per queue per round trip, each deleting at most PRUNE_BATCH
    tasks, until every queue's call took fewer or the reap's share is spent; returns how
    many index entries were taken."""
    rules: dict[str, list[Arg]] = {}
    for rule in expiries(retention):
        rules.setdefault(rule.queue, []).extend([rule.status.value, rs.span(rule.seconds)])
    taken = 0
    while rules and taken < PRUNE_PER_REAP:
        names = list(rules)
        calls = [Script("expire", [base(q)], [PRUNE_BATCH, *rules[q]]) for q in names]
        counts = await link.scripts(*calls)
        taken += sum(counts)
        rules = {q: rules[q] for q, n in zip(names, counts, strict=True) if n >= PRUNE_BATCH}
    return taken
