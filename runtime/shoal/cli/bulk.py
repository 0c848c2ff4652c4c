"""Bulk repair: retry or purge every task a filter selects, after saying how many.

The selection is read first, in keyset pages of ``list_tasks`` (each page costs the same
however deep it is), and its ids are kept: the tasks counted and confirmed are the tasks
changed, never ones that arrived since. The change then goes to the backend a page of ids
per round trip (``retry_many``, ``purge_tasks``); a task that left the state it was
selected in meanwhile is skipped by the backend and counted apart. A run longer than a
page reports its progress on stderr, at most once a second.

Counting reports its progress the same way.

Confirmation (:func:`decide`): ``--dry-run`` only counts; ``--yes`` goes ahead; otherwise
a terminal is asked, and without one the command refuses (exit 2) and says to add --yes.
"""

from __future__ import annotations

import asyncio
import enum
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shoal.backends import Backend
from shoal.core.errors import ConfigurationError
from shoal.core.models import TaskStatus

PAGE = 1000
"""Tasks per listing page and per change: one round trip each, small enough that no call
holds a lock (or the Redis server) for long."""


@dataclass(frozen=True, slots=True)
class Selection:
    """The filters of a bulk change, as ``list_tasks`` takes them."""

    statuses: tuple[TaskStatus, ...]
    queue: str | None = None
    name: str | None = None
    since: datetime | None = None
    until: datetime | None = None


async def matching(
    backend: Backend, selection: Selection, page: int = PAGE, every: float = 1.0
) -> list[str]:
    """The ids of every task ``selection`` picks, newest first; how many so far is said on
    stderr at most once per ``every`` seconds."""
    ids: list[str] = []
    before, shown = None, time.monotonic()
    while True:
        tasks = await backend.list_tasks(
            queue=selection.queue, statuses=selection.statuses, name=selection.name,
            since=selection.since, until=selection.until, before=before, limit=page,
        )  # fmt: skip
        ids.extend(task.id for task in tasks)
        if len(tasks) < page:
            return ids
        before = tasks[-1].id
        if time.monotonic() - shown >= every:
            print(f"counting: {len(ids)} so far", file=sys.stderr)
            shown = time.monotonic()


class Decision(enum.Enum):
    NOTHING = "nothing matches"
    COUNT_ONLY = "--dry-run: count only"
    GO = "go ahead"
    ASK = "ask the terminal"
    REFUSE = "no terminal to ask, and no --yes"


def decide(count: int, *, yes: bool, dry_run: bool, interactive: bool) -> Decision:
    """What to do with ``count`` matching tasks, given the flags and whether stdin is a
    terminal: a script must say --yes, so a pipeline never deletes by accident."""
    if count == 0:
        return Decision.NOTHING
    if dry_run:
        return Decision.COUNT_ONLY
    if yes:
        return Decision.GO
    return Decision.ASK if interactive else Decision.REFUSE


async def confirmed(count: int, verb: str, *, yes: bool, dry_run: bool) -> bool:
    """Print how many tasks match and whether they will be changed; ask if need be."""
    noun = "task matches" if count == 1 else "tasks match"
    print(f"{count} {noun}")
    decision = decide(count, yes=yes, dry_run=dry_run, interactive=sys.stdin.isatty())
    if decision is Decision.REFUSE:
        raise ConfigurationError(
            f"{verb} {count} tasks needs a confirmation and there is no terminal to ask: "
            "add --yes (or --dry-run to count only)"
        )
    if decision is Decision.ASK:
        # Not input(): on a terminal it writes the prompt to stderr; both lines go together.
        print(f"{verb} {count} tasks? [y/N] ", end="", flush=True)
        answer = await asyncio.to_thread(sys.stdin.readline)
        return answer.strip().lower() in ("y", "yes")
    return decision is Decision.GO


async def apply(
    ids: Sequence[str],
    change: Callable[[Sequence[str]], Awaitable[int]],
    verb: str,
    page: int = PAGE,
    every: float = 1.0,
) -> int:
    """``change`` over ``ids`` a page at a time, saying how far it got on stderr at most
    once per ``every`` seconds; returns how many it changed."""
    changed, shown = 0, time.monotonic()
    for start in range(0, len(ids), page):
        changed += await change(ids[start : start + page])
        done = min(start + page, len(ids))
        if time.monotonic() - shown >= every and done < len(ids):
            print(f"{verb}: {done} of {len(ids)} ({100 * done // len(ids)}%)", file=sys.stderr)
            shown = time.monotonic()
    return changed
