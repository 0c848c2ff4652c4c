"""The portal: one event loop in a background thread per process, for code without a loop.

The sync API (``push_sync`` and the like) is the async API run here, never a second
implementation: :func:`call` sends a coroutine function to a loop and blocks the calling
thread until it returns. The loop is the app's home when the app is open on a loop that is
running in another thread (a plain-function handler inside a worker pushes on the worker's
own loop and pool); otherwise it is the portal's, started on first use, where the app then
opens itself on its first push and stays open: one loop and one pool per process, shared by
every thread.

Across ``os.fork()`` (gunicorn and other pre-fork servers) the child has no portal thread
and must not touch its parent's connections: a fork handler forgets the portal (the child
starts its own on first use) and every open app's backend (rebuilt, never closed, since
closing would end the parent's sessions). At interpreter exit the apps open on the portal are
closed and its loop stopped, within :data:`CLOSE_TIMEOUT`; the thread is a daemon, so a
backend that cannot close in time never holds the exit up.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import concurrent.futures.thread  # see the exit handler at the end
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from shoal.core.errors import ConfigurationError

P = ParamSpec("P")
T = TypeVar("T")

CLOSE_TIMEOUT = 10.0
"""Seconds the exit handler gives the apps open on the portal to close."""


class Portal:
    """A loop in a daemon thread, started on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closers: list[Callable[[], Awaitable[None]]] = []
        # Loops inherited across fork: kept referenced, so that collecting one never touches
        # the selector and sockets it shares with the parent.
        self._inherited: list[asyncio.AbstractEventLoop] = []

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                started = threading.Event()
                loop = asyncio.new_event_loop()
                self._thread = threading.Thread(
                    target=_serve, args=(loop, started), name="shoal-portal", daemon=True
                )
                self._thread.start()
                started.wait()
                self._loop = loop
            return self._loop

    def close_at_exit(self, close: Callable[[], Awaitable[None]]) -> None:
        """Run ``close`` on the portal's loop when the interpreter exits (once)."""
        with self._lock:
            if close not in self._closers:
                self._closers.append(close)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> None:
        """Close what asked to be closed, then stop the loop and join its thread."""
        with self._lock:
            loop, thread, closers = self._loop, self._thread, self._closers
            self._loop = self._thread = None
            self._closers = []
        if loop is None or thread is None:
            return
        done = asyncio.run_coroutine_threadsafe(_close_all(closers), loop)
        try:
            done.result(timeout)
        except (concurrent.futures.TimeoutError, Exception):
            done.cancel()  # the thread is a daemon: the exit goes on
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout)
        if not thread.is_alive():
            loop.close()

    def forget_after_fork(self) -> None:
        """In a child: the thread did not survive the fork, and the loop's resources (its
        selector, the apps' connections) are the parent's. Start afresh on next use."""
        self._lock = threading.Lock()
        if self._loop is not None:
            self._inherited.append(self._loop)
        self._loop = self._thread = None
        self._closers = []


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    loop.run_forever()


async def _close_all(closers: list[Callable[[], Awaitable[None]]]) -> None:
    await asyncio.gather(*(close() for close in closers), return_exceptions=True)


PORTAL = Portal()
# The exit handler must run while thread pools still take work (the SQLite backend's thread
# closes its connection): ``concurrent.futures`` shuts its pools down from the hook below,
# which runs its callbacks newest first and before ``atexit``; importing it first makes ours
# newer. The hook is private but is the one ``concurrent.futures`` itself relies on.
threading._register_atexit(PORTAL.close)  # type: ignore[attr-defined]
os.register_at_fork(after_in_child=PORTAL.forget_after_fork)


def call_on(
    loop: asyncio.AbstractEventLoop,
    function: Callable[P, Coroutine[Any, Any, T]],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run ``function(*args, **kwargs)`` on ``loop`` from another thread and return its
    result (or raise its exception) here. An interrupt of the waiting thread (Ctrl-C)
    cancels the call on the loop."""
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is not None:
        raise ConfigurationError(
            "a sync call (push_sync, ...) from a thread running an event loop would block "
            "that loop: await the async form (push, ...) there instead"
        )
    future = asyncio.run_coroutine_threadsafe(function(*args, **kwargs), loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


async def await_on(
    loop: asyncio.AbstractEventLoop,
    function: Callable[P, Coroutine[Any, Any, T]],
    /,
    *args: P.args,
    **kwargs: P.kwargs,
) -> T:
    """Run ``function(*args, **kwargs)`` on ``loop`` (running in another thread) and await
    its result from the running loop; cancelling the wait cancels the call there."""
    return await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(function(*args, **kwargs), loop)
    )
