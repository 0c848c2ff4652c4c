"""Where an app's backend is open: on which event loop, opened by whom, closed when.

A backend's connections belong to the event loop that opened them (an asyncpg pool, a redis
client, the SQLite thread's futures). So an app remembers its *home* loop, and a push from
elsewhere is sent there while it runs in another thread (a sync push, or an async one from
another loop: :mod:`shoal.app.portal`), or refused with a reason when it does not run.

A push on an app that is not open opens it on the running loop, once however many pushes
race for it, and closes it when that loop ends: :func:`asyncio.run` (and every runner that
finalises async generators, as uvicorn and pytest-asyncio do) closes a parked generator
before closing its loop, and that generator's ``finally`` closes the app. ``async with app``
stays the explicit form, and what it opened it closes.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import AsyncGenerator, Callable, Coroutine
from typing import Any

from shoal.app.portal import await_on
from shoal.core.errors import ConfigurationError

# Backends (and parked closers) dropped by a child after fork, or left by a loop that ended:
# their connections are the parent's or that loop's, so they must never be closed (or
# finalised) here; kept referenced, they never are.
_FORSAKEN: list[object] = []


class Home:
    """The loop an app's backend is open on, and the first push that opens it there."""

    def __init__(
        self,
        open_backend: Callable[[], Coroutine[Any, Any, None]],
        drop_backend: Callable[[], None],
    ) -> None:
        self._open_backend = open_backend
        self._drop_backend = drop_backend
        self.loop: asyncio.AbstractEventLoop | None = None
        self._opening: asyncio.Task[None] | None = None
        self._closer: AsyncGenerator[None, None] | None = None
        self._closer_token: object | None = None

    def opened(self) -> None:
        """The backend was just opened on the running loop."""
        self.loop = asyncio.get_running_loop()
        _HOMED.add(self)

    async def closed(self) -> None:
        """The backend was just closed (or dropped)."""
        home, closer = self.loop, self._closer
        self.loop = self._opening = None
        # Disarmed first: the parked generator's ``finally`` must not close the app again.
        self._closer = self._closer_token = None
        _HOMED.discard(self)
        if closer is None:
            return
        if _running_loop() is home:
            await closer.aclose()
        else:  # finalising it would need its loop, which is not this one
            _FORSAKEN.append(closer)

    def running_elsewhere(self) -> asyncio.AbstractEventLoop | None:
        """The home loop if it runs and is not the caller's: where sync calls must go."""
        loop = self.loop
        if loop is None or loop.is_closed() or not loop.is_running():
            return None
        return None if _running_loop() is loop else loop

    async def come_here(self, close: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Before an explicit open on the running loop: an app open on another loop that runs
        (the portal's, after a sync push) is closed there first, so that it opens here with
        connections of this loop's own; one whose loop has ended is built anew."""
        home = self.loop
        if home is None or home is _running_loop():
            return
        if home.is_closed():
            self.forget()
        elif home.is_running():
            await await_on(home, close)
        else:
            raise self._elsewhere()

    async def ensure_open(self, close: Callable[[], Coroutine[Any, Any, None]]) -> bool:
        """Open on the running loop unless open there already; True if it opened now.

        Concurrent first pushes share one opening task; a failed opening is forgotten, so
        the next push tries again.
        """
        loop = asyncio.get_running_loop()
        if self.loop is loop:
            return False
        if self.loop is not None and self.loop.is_closed():
            # Opened explicitly on a loop that ended without close(): its connections died
            # with it, so the backend is built anew.
            self.forget()
        if self.loop is not None:
            raise self._elsewhere()
        if self._opening is None or self._opening.get_loop() is not loop:
            self._opening = loop.create_task(self._open_backend())
        opening = self._opening
        try:
            await asyncio.shield(opening)
        except BaseException:
            if opening.done() and self._opening is opening:
                self._opening = None
            raise
        if self._closer is None:
            # Parked until the loop finalises its async generators, then closes the app.
            self._closer_token = token = object()
            self._closer = _close_at_loop_end(self, token, close)
            await anext(self._closer)
        return True

    @staticmethod
    def _elsewhere() -> ConfigurationError:
        return ConfigurationError(
            "this app is open on another event loop, which is not running, and its "
            "connections belong there: use it while that loop runs, or close the app there "
            "first (await app.close())"
        )

    def forget(self) -> None:
        """The loop and its connections are gone (a child after fork, a loop that ended
        without close()), so the backend is dropped (rebuilt on next use), never closed."""
        if self._closer is not None:
            _FORSAKEN.append(self._closer)
        self._drop_backend()
        self.loop = self._opening = None
        self._closer = self._closer_token = None
        _HOMED.discard(self)


async def _close_at_loop_end(
    home: Home, token: object, close: Callable[[], Coroutine[Any, Any, None]]
) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        if home._closer_token is token:
            home._closer = home._closer_token = None
            await close()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def forsake(backend: object) -> None:
    """Keep a backend whose connections are not ours alive and untouched (``_FORSAKEN``)."""
    _FORSAKEN.append(backend)


_HOMED: weakref.WeakSet[Home] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for home in list(_HOMED):
        home.forget()


os.register_at_fork(after_in_child=_after_fork_in_child)
