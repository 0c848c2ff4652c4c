"""An app's backend and the loop its connections belong to: built on first use, opened and
closed, dropped when its connections are another process's or loop's, and the sync bridge
(:meth:`Connected.call_sync`) that runs a coroutine on that loop or on the portal.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, Self, TypeVar

from shoal.app.opening import Home, forsake
from shoal.app.portal import PORTAL, call_on
from shoal.backends import Backend, open_backend

P = ParamSpec("P")
R = TypeVar("R")


class Connected:
    """The base of :class:`~shoal.app.App`: its backend, its home loop, the sync API."""

    backend_url: str | None
    _backend: Backend | None
    _owns_backend: bool
    _home: Home

    @property
    def backend(self) -> Backend:
        """The backend, built on first use (connected by :meth:`open`)."""
        if self._backend is None:
            self._backend = open_backend(self.backend_url)
            self._owns_backend = True
        return self._backend

    def use_backend(self, backend: Backend | None) -> None:
        """Share an already built backend (and its pool) with another app; ``None`` forgets
        it, so that the next use builds one from ``backend_url``."""
        self._backend = backend
        self._owns_backend = False

    async def open(self) -> None:
        """Connect, on the running loop, which the app's connections then belong to. A push
        opens an app that is not open by itself (closed when its loop ends); ``async with
        app`` is the explicit form. An app open on another loop running in another thread
        (the portal's, after a sync push) is closed there first."""
        await self._home.come_here(self.close)
        await self.backend.open()
        self._home.opened()

    async def close(self) -> None:
        if self._backend is not None:
            await self._backend.close()
        await self._home.closed()

    def call_sync(
        self,
        function: Callable[P, Coroutine[Any, Any, R]],
        /,
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> R:
        """Run one of this app's coroutine functions (``push``, a handle's ``result``, ...)
        from code without an event loop, and return its result: the sync API is this.

        It runs on the app's home loop if the app is open on a loop running in another
        thread, else on the process's portal loop (:mod:`shoal.app.portal`), where a push
        then opens the app; the app is closed there at exit. Thread-safe; refused in a
        thread that runs an event loop (await the async form there).
        """
        loop = self._home.running_elsewhere()
        if loop is None:
            loop = PORTAL.loop()
            PORTAL.close_at_exit(self._close_on_portal)
        return call_on(loop, function, *args, **kwargs)

    async def _close_on_portal(self) -> None:
        # Run on the portal's loop at exit: close the app if it is open there (not if it
        # has since been closed, or opened on another loop).
        if self._home.loop is asyncio.get_running_loop():
            await self.close()

    def _drop_backend(self) -> None:
        """Forget a backend whose connections are not this process's or loop's any more;
        one the app built is built anew from ``backend_url`` on next use."""
        if self._owns_backend and self._backend is not None:
            forsake(self._backend)
            self._backend = None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
