"""What text a task may carry: the rule every backend's push checks first, decided once.

A task's id, queue, name, idempotency key and metadata keys and values must be Unicode that
UTF-8 can encode (no lone surrogates) and hold no NUL character. PostgreSQL can store
neither in ``text`` or ``jsonb``, and Redis and SQLite would store what PostgreSQL refuses,
so a task would move between backends only sometimes; refusing it everywhere, before any
backend is touched, makes every backend accept the same tasks. Payloads are bytes and may
hold anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from shoal.core.errors import InvalidTask
from shoal.core.models import NewTask


def check_storable(tasks: Sequence[NewTask]) -> None:
    """Raise :class:`InvalidTask` naming the first task and field that break the rule."""
    if _all_storable(tasks):  # every push pays this: one look at all the text at once
        return
    for task in tasks:
        for field, text, noun, subject in _texts(task):
            problem = _problem(text)
            if problem is not None:
                named = noun if subject is None else f"{noun} {subject!r}"
                raise InvalidTask(task.id, field, f"the {named} {problem}")


def _all_storable(tasks: Sequence[NewTask]) -> bool:
    parts: list[str] = []
    for task in tasks:
        parts += (task.id, task.queue, task.name)
        if task.idempotency_key is not None:
            parts.append(task.idempotency_key)
        for key, value in task.metadata.items():
            parts.append(key)
            if isinstance(value, str):
                parts.append(value)
    text = "".join(parts)
    return "\x00" not in text and _problem(text) is None


def _texts(task: NewTask) -> Iterator[tuple[str, object, str, str | None]]:
    """(field, text, how to name it, what to quote in the name) for every text of a task;
    named only when it breaks the rule, since every push checks every task."""
    yield "id", task.id, "id", None
    yield "queue", task.queue, "queue name", task.queue
    yield "name", task.name, "task name", task.name
    if task.idempotency_key is not None:
        yield "idempotency_key", task.idempotency_key, "idempotency key", task.idempotency_key
    for key, value in task.metadata.items():
        yield "metadata", key, "metadata key", key
        # The value may be anything the caller labels tasks with: named by its key only.
        yield "metadata", value, "metadata value of", key


def _problem(text: object) -> str | None:
    if not isinstance(text, str):  # metadata typed loosely by its caller: stored as JSON
        return None
    if "\x00" in text:
        return "holds a NUL character (\\x00), which PostgreSQL cannot store"
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "is not valid Unicode (it holds a lone surrogate)"
    return None
