"""Waiting for the first of several things: one helper for every "whichever comes first".

A worker waits for a free slot, a claim coming back or a wake-up from its backend; a backend
waits for its own pushes or another process's commits; the operator waits for a wake-up or
a change of its idle pools. Each is :func:`first_of`, which also cancels what is left and
waits until it has stopped, so no waiter outlives the wait (a forgotten one would hold a
listener's attention, or log "Task was destroyed but it is pending" at exit).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any


async def first_of(
    *awaitables: Awaitable[Any], timeout: float | None = None
) -> list[asyncio.Future[Any]]:
    """Wait until one of ``awaitables`` finishes or ``timeout`` seconds pass; cancel the rest.

    Returns the ones that finished, in the order given (empty after a timeout). Their errors
    are not raised: look at each future's ``exception()`` where one matters. Cancelling the
    caller cancels every awaitable.
    """
    futures = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        await asyncio.wait(futures, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
    return [future for future in futures if not future.cancelled()]
