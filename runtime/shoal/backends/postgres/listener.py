"""Wake-ups for the ``postgresql://`` backend: one LISTEN connection shared by every queue.

:class:`Wakeups` keeps the coroutines waiting for work, each on its own set of queues, and
wakes those a hint concerns. :class:`Listener` owns the one connection that LISTENs on the
backend's channel and turns each NOTIFY (a newline-separated list of queue names, or empty
for "any queue") into such a hint. When that connection dies the listener reconnects with
exponential backoff and jitter, and says so in :attr:`Listener.health`; meanwhile the
backend polls (see ``PostgresBackend.wait_for_work``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Literal

logger = logging.getLogger("shoal.backends.postgres")

Reason = Literal["work", "poke"]
"""Why a waiter woke: work may have arrived, or the listener changed state (look yourself)."""


@dataclasses.dataclass(eq=False, slots=True)
class _Waiter:
    queues: frozenset[str]
    woken: asyncio.Future[Reason]

    def wake(self, reason: Reason) -> None:
        if not self.woken.done():
            self.woken.set_result(reason)


class Wakeups:
    """Coroutines waiting for work, and which hints arrived since each set of queues claimed.

    A hint that arrives between a worker's empty claim and its next wait would otherwise be
    lost: :meth:`claiming` marks when a claim starts and :meth:`missed` reports any hint that
    came after it, so the worker claims again at once instead of sleeping through it.
    """

    def __init__(self) -> None:
        self._waiters: set[_Waiter] = set()
        self._seq = 0
        self._hinted: dict[str, int] = {}
        self._hinted_all = 0
        self._claims: dict[frozenset[str], int] = {}

    def work(self, queues: Iterable[str] | None) -> None:
        """Work may have arrived on ``queues`` (``None``: on any queue)."""
        self._seq += 1
        names = None if queues is None else frozenset(queues)
        if names is None:
            self._hinted_all = self._seq
        else:
            self._hinted.update(dict.fromkeys(names, self._seq))
        for waiter in list(self._waiters):
            if names is None or not waiter.queues.isdisjoint(names):
                waiter.wake("work")

    def poke(self) -> None:
        """Wake every waiter to look for work itself (the listener went up or down)."""
        for waiter in list(self._waiters):
            waiter.wake("poke")

    def claiming(self, queues: Iterable[str]) -> None:
        """A claim over ``queues`` starts: hints older than now are answered by it."""
        self._claims[frozenset(queues)] = self._seq

    def missed(self, queues: Iterable[str]) -> bool:
        """Whether a hint for ``queues`` arrived since their last claim started (once)."""
        key = frozenset(queues)
        mark = self._claims.get(key)
        if mark is None:
            return False
        latest = max([self._hinted_all, *(self._hinted.get(q, 0) for q in key)])
        if latest <= mark:
            return False
        self._claims[key] = self._seq
        return True

    async def wait(self, queues: Iterable[str], timeout: float) -> Reason | None:
        """Wait up to ``timeout`` seconds for a hint about ``queues``; None on timeout."""
        waiter = _Waiter(frozenset(queues), asyncio.get_running_loop().create_future())
        self._waiters.add(waiter)
        try:
            return await asyncio.wait_for(waiter.woken, timeout)
        except TimeoutError:
            return None
        finally:
            self._waiters.discard(waiter)


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
        ping: str,
        scrub: Callable[[str], str],
        keepalive: float = 15.0,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self._connect = connect
        self._channel = channel
        self._wakeups = wakeups
        self._ping = ping
        self._scrub = scrub
        self._keepalive = keepalive
        self._backoff = backoff
        self._task: asyncio.Task[None] | None = None
        self._state = ListenerState.IDLE
        self._reconnects = 0
        self._last_error: str | None = None
        self.generation = 0
        """Counts the LISTENs that succeeded: a change means notifications may have been
        missed in between."""

    @property
    def health(self) -> ListenerHealth:
        return ListenerHealth(self._state, self._reconnects, self._last_error)

    @property
    def listening(self) -> bool:
        return self._state is ListenerState.LISTENING

    def start(self) -> None:
        """Start listening in the background (once; later calls do nothing)."""
        if self._task is None:
            self._state = ListenerState.CONNECTING
            self._task = asyncio.create_task(self._run(), name=f"shoal listener {self._channel}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._state = ListenerState.IDLE

    async def _run(self) -> None:
        delay = self._backoff[0]
        while True:  # ends when stop() cancels the task
            generation = self.generation
            try:
                await self._listen()
            except Exception as exc:  # any failure: record it, back off, reconnect
                self._last_error = self._scrub(f"{type(exc).__name__}: {exc}")
            if self.generation != generation:
                delay = self._backoff[0]  # it had worked: start backing off afresh
            self._state = ListenerState.RECONNECTING
            self._reconnects += 1
            self._wakeups.poke()
            logger.warning(
                "LISTEN connection lost (%s); polling until it is back, retrying in %.1fs",
                self._last_error,
                delay,
            )
            # Jitter: many workers cut off by one database restart should not reconnect in
            # lockstep.
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self._backoff[1])

    async def _listen(self) -> None:
        connection = await self._connect()
        try:
            lost = asyncio.Event()
            connection.add_termination_listener(lambda _connection: lost.set())
            await connection.add_listener(self._channel, self._on_notify)
            self._state = ListenerState.LISTENING
            self.generation += 1
            self._wakeups.poke()  # notifications sent while we were away are gone: look
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), self._keepalive)
                except TimeoutError:
                    await connection.execute(self._ping, timeout=self._keepalive)
            raise ConnectionError("the server closed the LISTEN connection")
        finally:
            connection.terminate()

    def _on_notify(self, _connection: object, _pid: int, _channel: str, payload: str) -> None:
        self._wakeups.work(payload.split("\n") if payload else None)


async def wait_for_work(
    wakeups: Wakeups,
    listener: Listener | None,
    queues: Sequence[str],
    timeout: float,
    *,
    poll_interval: float,
    work_due: Callable[[], Awaitable[bool]],
) -> None:
    """Return on a hint about ``queues``, when polling finds due work, or after ``timeout``.

    A listener is trusted only from a LISTEN that was in place before the last look at the
    table: until then (starting, reconnecting, or ``listener`` None in poll-only mode) this
    looks for due work itself every ``poll_interval`` seconds.
    """
    if wakeups.missed(queues):
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    trusted: int | None = None  # the listener generation that has heard everything since
    while (remaining := deadline - loop.time()) > 0:
        trusting = listener is not None and listener.listening and listener.generation == trusted
        reason = await wakeups.wait(
            queues, remaining if trusting else min(remaining, poll_interval)
        )
        if reason == "work":
            return
        if trusting and reason is None:
            continue  # the whole timeout passed quietly
        generation = listener.generation if listener is not None and listener.listening else None
        if await work_due():
            return
        trusted = generation
