"""The ``postgresql://`` backend's source of wake-ups: one LISTEN connection for every queue.

:class:`Listener` owns the one connection that LISTENs on the backend's channel and turns
each NOTIFY (a newline-separated list of queue names, or empty for "any queue") into a hint
for the backend's :class:`~shoal.backends.shared.wakeups.Wakeups`, which keeps the waiters
and the wait. Once this process waits for a result, the same connection also LISTENs on
the results channel, whose notifications name finished tasks, for the backend's
:class:`~shoal.backends.shared.finishes.Finishes` (only then: a worker that waits for no
result is not sent every other worker's acks). When
that connection dies the listener tells both it is deaf (waiters then poll), reconnects with
the shared :class:`~shoal.core.backoff.Backoff`, and says so in :attr:`Listener.health`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.backoff import Backoff

logger = logging.getLogger("shoal.backends.postgres")

_RECONNECT = Backoff(base=0.1, cap=5.0)
"""Between LISTEN connection attempts: quick after a blip, at most 5 s in an outage."""


class ListenerState(enum.StrEnum):
    """Where the shared LISTEN connection is."""

    DISABLED = "disabled"
    """Poll-only mode (``?listen=false``), e.g. behind PgBouncer in transaction pooling."""
    IDLE = "idle"
    """Not started: nothing has waited for work yet (a producer never needs it)."""
    CONNECTING = "connecting"
    LISTENING = "listening"
    RECONNECTING = "reconnecting"
    """The connection failed; polling covers for it while the listener backs off."""


@dataclasses.dataclass(frozen=True, slots=True)
class ListenerHealth:
    """What ``shoal check`` reports about wake-ups."""

    state: ListenerState
    reconnects: int = 0
    """How many times the connection was lost (or could not be made) since the start."""
    last_error: str | None = None
    """Why it was last lost; never contains the password."""

    @property
    def healthy(self) -> bool:
        return self.state is not ListenerState.RECONNECTING


class Listener:
    """The one connection that LISTENs for a backend, kept alive and reconnected.

    ``connect`` opens a fresh driver connection (outside the backend's pool, so that a busy
    pool never delays wake-ups); ``ping`` is a trivial query sent every ``keepalive``
    seconds, because a connection cut without a FIN (a dead node, a NAT timeout) would
    otherwise look alive forever.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Any]],
        channel: str,
        wakeups: Wakeups,
        *,
        results: tuple[str, Finishes],
        ping: str,
        scrub: Callable[[str], str],
        keepalive: float = 15.0,
        backoff: Backoff = _RECONNECT,
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._wakeups = wakeups
        self._results_channel, self._finishes = results  # finished tasks, on the same connection
        self._results_wanted = False
        self._ping = ping
        self._scrub = scrub
        self._keepalive = keepalive
        self._backoff = backoff
        self._task: asyncio.Task[None] | None = None
        self._state = ListenerState.IDLE
        self._reconnects = 0
        self._last_error: str | None = None

    @property
    def health(self) -> ListenerHealth:
        return ListenerHealth(self._state, self._reconnects, self._last_error)

    def start(self) -> None:
        """Start listening in the background (once; later calls do nothing)."""
        if self._task is None:
            self._state = ListenerState.CONNECTING
            self._task = asyncio.create_task(self._run(), name=f"shoal listener {self._channel}")

    async def want_results(self) -> None:
        """LISTEN on the results channel too, from now on: the first wait for a result
        reconnects a listener already running (its waiters for work poll for that moment)."""
        if self._results_wanted:
            return
        self._results_wanted = True
        if self._task is not None:
            await self.stop()
            self.start()

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self._deaf()
        self._state = ListenerState.IDLE

    async def _run(self) -> None:
        failures = 0
        while True:  # ends when stop() cancels the task
            try:
                await self._listen()
            except Exception as exc:  # any failure: record it, back off, reconnect
                self._last_error = self._scrub(f"{type(exc).__name__}: {exc}")
            if self._state is ListenerState.LISTENING:
                failures = 0  # it had worked: start backing off afresh
            failures += 1
            self._state = ListenerState.RECONNECTING
            self._reconnects += 1
            self._deaf()
            delay = self._backoff.delay(failures)
            logger.warning(
                "LISTEN connection lost (%s); polling until it is back, retrying in %.1fs",
                self._last_error,
                delay,
            )
            await asyncio.sleep(delay)

    async def _listen(self) -> None:
        connection = await self._connect()
        try:
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(self._channel, self._on_notify)
            results = self._results_wanted  # as it was when LISTENing began
            if results:
                await connection.add_listener(self._results_channel, self._on_finished)
            self._state = ListenerState.LISTENING
            self._wakeups.hearing()  # notifications sent while we were away are gone
            if results:
                self._finishes.hearing()
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), self._keepalive)
                except TimeoutError:
                    await connection.execute(self._ping, timeout=self._keepalive)
            raise ConnectionError("the server closed the LISTEN connection")
        finally:
            connection.terminate()

    def _deaf(self) -> None:
        self._wakeups.deaf()
        self._finishes.deaf()

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self._wakeups.work(payload.split("\n") if payload else None)

    def _on_finished(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self._finishes.finished(payload.split("\n") if payload else None)
