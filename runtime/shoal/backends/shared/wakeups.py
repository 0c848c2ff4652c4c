"""Wake-ups, written once: who waits for which queues, which hints arrived, and the wait.

Every backend's ``wait_for_work`` is :meth:`Wakeups.wait_for_work`. A backend supplies two
things only: its **source of hints** (memory: its own pushes; SQLite: its own pushes and
other processes' commits; PostgreSQL: LISTEN/NOTIFY; Redis: pub/sub), which reports to the
backend's :class:`Wakeups` through :meth:`~Wakeups.work`, :meth:`~Wakeups.hearing` and
:meth:`~Wakeups.deaf`; and its **fallback poll** (``work_due``), a look at the store for
when the source cannot be trusted.

Two rules make a wake-up impossible to lose on any backend:

- **Claim marks.** A backend calls :meth:`~Wakeups.claiming` as a claim starts. A hint that
  lands after that, while the worker is between its (empty) claim and its next wait, is
  answered by that next wait at once instead of being slept through.
- **Trust.** A source that is starting, reconnecting or switched off may miss hints, so the
  wait trusts it only while it has heard everything, without a break, since the last claim
  of those queues started or since the wait's own last look at the store. Until then the
  wait looks (``work_due``) every ``poll_interval`` seconds, and a source that goes deaf or
  comes back pokes every waiter into looking again.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Literal

Reason = Literal["work", "poke"]
"""Why a waiter woke: work may have arrived, or the source changed state (look yourself)."""


@dataclasses.dataclass(eq=False, slots=True)
class _Waiter:
    queues: frozenset[str]
    woken: asyncio.Future[Reason]

    def wake(self, reason: Reason) -> None:
        if not self.woken.done():
            self.woken.set_result(reason)


@dataclasses.dataclass(frozen=True, slots=True)
class _Mark:
    """Where the hints stood when a claim of some queues started."""

    seq: int
    spell: int | None
    """The source's spell of hearing everything then (None: it was deaf)."""


class Wakeups:
    """The waiters of one backend instance and the hints it has had.

    ``complete`` says the backend's own calls are its only source of hints (memory://):
    it then hears everything from the start and never needs to look.
    """

    def __init__(self, *, complete: bool = False) -> None:
        self._waiters: set[_Waiter] = set()
        self._seq = 0
        self._hinted: dict[str, int] = {}
        self._hinted_all = 0
        self._claims: dict[frozenset[str], _Mark] = {}
        self._spells = 0
        self._spell: int | None = 0 if complete else None

    # -- what the backend and its source report ------------------------------------------------

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

    def hearing(self) -> None:
        """The source hears every hint from now on (a new spell). After a break, what it
        missed while it was away is gone, so every waiter looks for itself; the first
        spell missed nothing that anyone heard before, and waiters poll on as they were."""
        back = self._spells > 0
        self._spells += 1
        self._spell = self._spells
        if back:
            self._poke()

    def deaf(self) -> None:
        """The source may miss hints from now on (a connection lost): waiters poll."""
        self._spell = None
        self._poke()

    def claiming(self, queues: Iterable[str]) -> None:
        """A claim over ``queues`` starts: hints older than now are answered by it."""
        self._claims[frozenset(queues)] = _Mark(self._seq, self._spell)

    # -- the wait ------------------------------------------------------------------------------

    async def wait_for_work(
        self,
        queues: Sequence[str],
        timeout: float,
        *,
        poll_interval: float | None = None,
        work_due: Callable[[], Awaitable[bool]] | None = None,
    ) -> None:
        """Return on a hint about ``queues``, when a look finds due work, or after ``timeout``.

        ``work_due`` looks at the store every ``poll_interval`` seconds while the source is
        not trusted (see the module docstring). Without one the caller's next claim is the
        look: an untrusted wait returns after ``poll_interval`` (default: the timeout).
        """
        key = frozenset(queues)
        mark = self._claims.get(key)
        if mark is not None and self._latest(key) > mark.seq:
            self._claims[key] = _Mark(self._seq, mark.spell)  # answered once, not twice
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        interval = timeout if poll_interval is None else poll_interval
        trusted = None if mark is None else mark.spell  # the spell that heard since the look
        while (remaining := deadline - loop.time()) > 0:
            trusting = self._spell is not None and self._spell == trusted
            reason = await self._wait(key, remaining if trusting else min(remaining, interval))
            if reason == "work":
                return
            if reason is None and trusting:
                return  # the whole timeout passed quietly
            if work_due is None:
                return  # polled out, or the source changed: the caller's claim looks
            spell, seq = self._spell, self._seq
            if await work_due():
                return
            if self._latest(key) > seq:
                return  # a hint landed while we looked
            trusted = spell

    def _latest(self, key: frozenset[str]) -> int:
        return max([self._hinted_all, *(self._hinted.get(queue, 0) for queue in key)])

    async def _wait(self, key: frozenset[str], timeout: float) -> Reason | None:
        waiter = _Waiter(key, asyncio.get_running_loop().create_future())
        self._waiters.add(waiter)
        try:
            return await asyncio.wait_for(waiter.woken, timeout)
        except TimeoutError:
            return None
        finally:
            self._waiters.discard(waiter)

    def _poke(self) -> None:
        for waiter in list(self._waiters):
            waiter.wake("poke")
