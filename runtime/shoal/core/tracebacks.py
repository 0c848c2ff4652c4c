"""A failed attempt's traceback as text a backend keeps: formatted, storable, then bounded.

A task keeps its last traceback for ``shoal jobs show`` and for the :class:`TaskFailed` a
waiting producer raises; a handler stuck in deep recursion makes a traceback of megabytes,
so the text is cut to :data:`LIMIT` characters. The head says where the task started and the
tail where it broke, so the middle goes, with a marker saying how much. An error's message
is the user's text and may hold what no backend stores (a NUL, a lone surrogate: PostgreSQL
refuses both), so it is escaped (:func:`storable`) rather than left to fail the record.
"""

from __future__ import annotations

import traceback

LIMIT = 8192
"""Characters of traceback a task keeps (8 KiB of ASCII): a few dozen frames."""


def format_traceback(error: BaseException, limit: int = LIMIT) -> str:
    """``error``'s traceback (its causes too), at most ``limit`` characters; never raises."""
    try:
        text = "".join(traceback.format_exception(error))
    except Exception:  # user code's __str__ can do anything: say what we can
        text = f"{type(error).__name__} (its traceback could not be formatted)\n"
    return bound(storable(text), limit)


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates escaped (``\\x00``, ``\\udc80``)."""
    escaped = text.replace("\x00", "\\x00")
    return escaped.encode("utf-8", "backslashreplace").decode("utf-8")


def bound(text: str, limit: int = LIMIT) -> str:
    """``text`` cut to at most ``limit`` characters from the middle, marked where."""
    if len(text) <= limit:
        return text
    marker = "\n... {} characters cut ...\n"
    room = limit - len(marker.format(len(text)))
    head = room // 3  # the tail holds the frame that raised and the message: it matters most
    tail = room - head
    return text[:head] + marker.format(len(text) - room) + text[len(text) - tail :]
