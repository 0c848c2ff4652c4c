"""The ``sqlite://`` backend's source of wake-ups from other processes: a commit watcher.

SQLite has no notifications. What tells a commit is ``PRAGMA data_version``, read on a
connection of the watcher's own: it changes whenever another connection (the backend's own
among them) commits to the file, and reading it touches no disk. The question is when to
read it, and that was decided by measurement (bench/wakeup_latency.py and the figures
below, on the project's 2-core VM under a load of 4-6):

- Polling it costs a wake-up per check, 60-270 us of CPU each on a loaded machine whether
  from a thread or the event loop: every 5 ms is 2-4 % of a core, idle, and still about
  2.5 ms late on average (the 50 ms of before: 1 %, and p50 25 ms, p99 57 ms).
- ``watchfiles`` (Rust's ``notify``) is no cheaper: its loop wakes every ``step`` (1.35 %
  of a core idle at ``step=5`` for a p99 of 10.6 ms; 3.5 % at ``step=1`` for 8.1 ms).
- inotify costs nothing while nothing happens and reports a write at once. A WAL database
  lives on one host (its readers and writers share memory, see SQLite's WAL docs), so the
  kernel sees every commit: watching the directory for writes to the file and its ``-wal``
  misses none. A commit writes its frames before it publishes them in the shared memory,
  so after a write the watcher reads the version again for a few milliseconds until it
  changes.

So on Linux the watcher waits on inotify (``inotify_simple``, a thin ctypes wrapper) from
the event loop, and elsewhere (macOS, Windows) it polls every :data:`CHECK_INTERVAL` while
a wait is on, checking at once when one begins. Either way the version it compares with is
the last one it read, so a commit that landed while nobody waited (between a worker's empty
claim and its next wait) is still a hint. One watcher per backend instance serves all of
its waiters.

The watcher's connection also sees the backend's own commits (claims, acks, heartbeats),
which are no news to its waiters: each woke a waiting worker into an empty claim, tripling
a lightly loaded worker's CPU per task. So a change is a hint only once ``foreign`` (the
backend's own connection, whose ``data_version`` ignores its own commits) confirms it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.wakeups import Wakeups
from shoal.backends.sqlite.support import data_version

logger = logging.getLogger("shoal.backends.sqlite")

CHECK_INTERVAL = 0.005
"""Seconds between looks when polling (no inotify) while someone waits."""
_SETTLE_PAUSES = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064)
"""After a write that showed no new version, look again after these pauses (0.13 s in all)
for a commit to be published: soon at first, as it nearly always is, sparsely later, as
most such writes are the last frames of a commit already seen."""


class CommitWatcher:
    """Turns other connections' commits to ``path`` into hints for ``wakeups``.

    ``foreign`` says whether a connection other than the backend's committed since it was
    last asked (True when it cannot tell).
    """

    def __init__(
        self,
        path: Path,
        wakeups: Wakeups,
        finishes: Finishes,
        foreign: Callable[[], Awaitable[bool]],
    ) -> None:
        self._path = path
        self._wakeups = wakeups
        self._finishes = finishes  # a commit may also have finished tasks someone waits for
        self._foreign = foreign
        self._confirming: asyncio.Task[None] | None = None
        self._confirm_again = False
        self._connection: sqlite3.Connection | None = None
        self._version = 0
        self._notifier: Any = None  # an inotify_simple.INotify, on Linux
        self._loop: asyncio.AbstractEventLoop | None = None  # where the notifier is read
        self._waits = 0
        self._polling: asyncio.Task[None] | None = None
        self._settling: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start watching (once; later calls do nothing)."""
        if self._connection is not None:
            return
        try:
            # timeout=0: a look never waits for a lock; a busy file just counts as a change.
            self._connection = sqlite3.connect(self._path, isolation_level=None, timeout=0)
            self._version = self._read_version()
        except sqlite3.Error as exc:  # deaf: waits end at their timeout; the next one retries
            logger.warning("cannot watch %s for commits: %s", self._path, exc)
            if self._connection is not None:
                self._connection.close()
                self._connection = None
            return
        self._notifier = self._notify_on_writes()
        self._wakeups.hearing()
        self._finishes.hearing()

    @contextlib.contextmanager
    def attending(self) -> Iterator[None]:
        """Mark a wait as on: without inotify, the watcher polls while one is."""
        self._waits += 1
        if self._notifier is None and self._connection is not None and self._polling is None:
            self._polling = asyncio.create_task(self._poll(), name="shoal sqlite watcher")
        try:
            yield
        finally:
            self._waits -= 1

    async def stop(self) -> None:
        for task in (self._polling, self._settling, self._confirming):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._polling = self._settling = self._confirming = None
        if self._notifier is not None:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(self._notifier.fileno())
            self._notifier.close()
            self._notifier = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self._wakeups.deaf()
            self._finishes.deaf()

    # -- looking -----------------------------------------------------------------------------

    def _read_version(self) -> int:
        assert self._connection is not None
        return data_version(self._connection)

    def _look(self) -> bool:
        """Whether the file changed since the last look; a change is confirmed, then a hint."""
        try:
            version = self._read_version()
        except sqlite3.Error as exc:  # busy or broken: say "look", the claim finds out
            logger.debug("cannot read %s's data_version: %s", self._path, exc)
            self._hint()
            return True
        if version == self._version:
            return False
        self._version = version
        if self._confirming is None or self._confirming.done():
            self._confirming = asyncio.create_task(self._confirm())
        else:
            self._confirm_again = True  # a commit after the one being confirmed
        return True

    async def _confirm(self) -> None:
        while True:
            self._confirm_again = False
            if await self._foreign():
                self._hint()
            if not self._confirm_again:
                return

    def _hint(self) -> None:
        """Another connection committed: work may be due and tasks may have finished."""
        self._wakeups.work(None)
        self._finishes.finished(None)

    async def _poll(self) -> None:
        try:
            while self._waits > 0:
                self._look()
                await asyncio.sleep(CHECK_INTERVAL)
        finally:
            self._polling = None

    # -- inotify -----------------------------------------------------------------------------

    def _notify_on_writes(self) -> Any:
        """An inotify watch on the file's directory, read from the event loop; None where
        there is no inotify (or no watch left), and the watcher polls instead."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            import inotify_simple

            notifier = inotify_simple.INotify(nonblocking=True)
            notifier.add_watch(self._path.parent, inotify_simple.flags.MODIFY)
        except (ImportError, OSError) as exc:
            logger.warning("no inotify for %s (%s): polling for commits", self._path, exc)
            return None
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(notifier.fileno(), self._on_writes)
        return notifier

    def _on_writes(self) -> None:
        names = {self._path.name, f"{self._path.name}-wal"}
        try:
            events = self._notifier.read(timeout=0)
        except OSError:
            return
        if not any(event.name in names for event in events) or self._look():
            return
        if self._settling is None or self._settling.done():
            self._settling = asyncio.create_task(self._settle())

    async def _settle(self) -> None:
        """A write without a new version yet: the commit is on its way to being published."""
        for pause in _SETTLE_PAUSES:
            await asyncio.sleep(pause)
            if self._look():
                return
