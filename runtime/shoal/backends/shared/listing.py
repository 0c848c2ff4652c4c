"""Which tasks a listing asks for, and the one order every backend lists them in.

A listing is newest first: by id, descending (ids are UUIDv7, so that is the order they were
made in). Pages are keyset pages: the next page is the tasks whose id is below the last id
of this one (``before``), so a page costs the same at the millionth task as at the first,
and tasks pushed meanwhile never shift a page. Filters: queue, statuses, task name, and a
time range (``since`` inclusive, ``until`` exclusive) on when the id was made: a UUIDv7 starts
with the milliseconds of its making, so a time range is a range of ids (``id_floor``), read
off the same index as the page. The id is made by the producer as it pushes, so this is the
time the task was created by the producer's clock. A task pushed with an id of its own
(``task_id=``) is ordered, and falls in a time range, by that id's text.

:class:`TaskQuery` holds the filters and judges one task (the memory and plugin backends
filter with it); :func:`sql_page` writes the one query both SQL backends run: one branch per
status asked, each an index range read newest first, merged and cut to the page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from shoal.core.ids import id_floor
from shoal.core.models import Task, TaskStatus


@dataclass(frozen=True, slots=True)
class TaskQuery:
    """The filters of one page of :meth:`~shoal.backends.base.Backend.list_tasks`."""

    queue: str | None = None
    statuses: tuple[TaskStatus, ...] = ()
    """Empty for every status."""
    name: str | None = None
    since: datetime | None = None
    """Ids made at or after (see the module's docstring)."""
    until: datetime | None = None
    """Ids made before."""
    before: str | None = None
    """The cursor: only ids below this one (the last id of the previous page)."""
    limit: int = 100

    @property
    def lowest(self) -> str | None:
        """The lowest id listed, from ``since``; None for no bound."""
        return None if self.since is None else id_floor(self.since)

    @property
    def above(self) -> str | None:
        """Ids listed are below this one, from ``before`` and ``until``; None for no bound."""
        until = None if self.until is None else id_floor(self.until)
        return min((b for b in (self.before, until) if b is not None), default=None)

    def matches(self, task: Task) -> bool:
        lowest, above = self.lowest, self.above
        return (
            (self.queue is None or task.queue == self.queue)
            and (not self.statuses or task.status in self.statuses)
            and (self.name is None or task.name == self.name)
            and (lowest is None or task.id >= lowest)
            and (above is None or task.id < above)
        )

    def page(self, tasks: Sequence[Task]) -> list[Task]:
        """The page of ``tasks`` this query selects, in listing order."""
        chosen = [t for t in tasks if self.matches(t)]
        return sorted(chosen, key=lambda t: t.id, reverse=True)[: self.limit]


def sql_page(
    query: TaskQuery, table: str, placeholder: Callable[[int], str]
) -> tuple[str, list[object]]:
    """The SQL of one page and its parameters; ``placeholder(n)`` writes the n-th (from 1)
    in the driver's style, e.g. ``$1`` or ``?1`` (numbered: the branches share them).

    With no status and no queue asked the primary key is read backwards; otherwise one branch
    per status (all six when none is asked) reads the ``(status, id)`` or
    ``(queue, status, id)`` index backwards, so no branch sorts more than a page. Task name
    and time range filter the rows those reads meet.
    """
    arguments: list[object] = []

    def mark(value: object) -> str:
        arguments.append(value)
        return placeholder(len(arguments))

    common = []
    if query.queue is not None:
        common.append(f"queue = {mark(query.queue)}")
    if query.name is not None:
        common.append(f"name = {mark(query.name)}")
    if query.lowest is not None:
        common.append(f"id >= {mark(query.lowest)}")
    if query.above is not None:
        common.append(f"id < {mark(query.above)}")
    limit = mark(query.limit)
    if query.queue is None and not query.statuses:
        where = " AND ".join(common) or "TRUE"
        return f"SELECT * FROM {table} WHERE {where} ORDER BY id DESC LIMIT {limit}", arguments
    branches = [
        f"SELECT * FROM (SELECT * FROM {table} WHERE "
        + " AND ".join([f"status = {mark(str(status))}", *common])
        + f" ORDER BY id DESC LIMIT {limit}) AS s{n}"
        for n, status in enumerate(query.statuses or tuple(TaskStatus))
    ]
    union = " UNION ALL ".join(branches)
    return f"SELECT * FROM ({union}) AS page ORDER BY id DESC LIMIT {limit}", arguments
