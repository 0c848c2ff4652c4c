"""Noticing a blocked event loop: which tasks were running, and for how long it was blocked.

A handler that blocks (``time.sleep`` or CPU-bound work in an ``async def``) stops every other
task of the worker, its heartbeats too, so its leases may expire under it. A thread of the
watchdog's own notices that the loop stopped answering, and logs what was running then;
the loop, once free, logs how long the block lasted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("shoal.worker")

BLOCKED_AFTER = 1.0
"""Seconds without the loop running a callback before the watchdog calls it blocked: far
above a healthy loop's pauses, well below the default heartbeat interval (5 s)."""


class LoopWatchdog:
    """Watches the running event loop from a thread; ``running`` names the tasks running."""

    def __init__(
        self,
        running: Callable[[], list[str]],
        *,
        blocked_after: float = BLOCKED_AFTER,
        extra: dict[str, object] | None = None,
    ) -> None:
        self._running = running
        self._blocked_after = blocked_after
        self._extra = extra or {}
        self._tick = blocked_after / 4
        self._last_seen = time.monotonic()
        self._culprits: list[str] | None = None  # what ran when the block was noticed
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None

    @property
    def blocked_for(self) -> float:
        """Seconds since the loop last ran the watchdog's callback (0 when it is on time)."""
        late = time.monotonic() - self._last_seen - self._tick
        return max(0.0, late)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._last_seen = time.monotonic()
        self._timer = self._loop.call_later(self._tick, self._on_loop)
        self._thread = threading.Thread(target=self._watch, name="shoal-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._thread is not None:
            self._thread.join(timeout=self._tick * 2)

    def _on_loop(self) -> None:
        now = time.monotonic()
        blocked = now - self._last_seen - self._tick
        culprits, self._culprits = self._culprits, None
        if blocked >= self._blocked_after:
            logger.warning(
                "event loop was blocked for %.1fs (a handler that blocks in async code?); "
                "running then: %s",
                blocked,
                ", ".join(culprits if culprits is not None else self._running()) or "no task",
                extra={**self._extra, "blocked_seconds": round(blocked, 3)},
            )
        self._last_seen = now
        if self._loop is not None and not self._stopped.is_set():
            self._timer = self._loop.call_later(self._tick, self._on_loop)

    def _watch(self) -> None:
        while not self._stopped.wait(self._tick):
            blocked = self.blocked_for
            if blocked < self._blocked_after or self._culprits is not None:
                continue
            try:  # the loop is stuck, so its dict of running tasks holds still
                self._culprits = self._running()
            except RuntimeError:  # it moved on after all, mid-read
                continue
            logger.warning(
                "event loop blocked for %.1fs so far; running: %s",
                blocked,
                ", ".join(self._culprits) or "no task",
                extra={**self._extra, "blocked_seconds": round(blocked, 3)},
            )
