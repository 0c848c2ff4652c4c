"""The shared wake-up bookkeeping and wait (``backends/shared/wakeups.py``), and ``first_of``.

Pure logic on the event loop: a fake source of hints is the test calling ``work``,
``hearing`` and ``deaf``; the fallback poll is a counter.
"""

from __future__ import annotations

import asyncio

from shoal.backends.shared.wakeups import Wakeups
from shoal.core.waiting import first_of


class Looks:
    """A ``work_due`` that counts its calls and finds work when told to."""

    def __init__(self) -> None:
        self.count = 0
        self.due = False

    async def __call__(self) -> bool:
        self.count += 1
        return self.due


async def elapsed(waiting: asyncio.Future[None] | asyncio.Task[None]) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(waiting, 5)
    return loop.time() - started


async def test_a_hint_after_a_claim_started_answers_the_next_wait_once() -> None:
    wakeups = Wakeups(complete=True)
    wakeups.claiming(["a", "b"])
    wakeups.work(["b"])  # lands between the empty claim and the wait
    assert await elapsed(asyncio.ensure_future(wakeups.wait_for_work(["b", "a"], 10))) < 0.05
    assert await elapsed(asyncio.ensure_future(wakeups.wait_for_work(["a", "b"], 0.2))) >= 0.15


async def test_a_hint_before_the_claim_or_for_other_queues_does_not_wake() -> None:
    wakeups = Wakeups(complete=True)
    wakeups.work(["a"])  # the claim that follows answers it
    wakeups.claiming(["a"])
    wakeups.work(["other"])
    assert await elapsed(asyncio.ensure_future(wakeups.wait_for_work(["a"], 0.2))) >= 0.15


async def test_a_hint_for_any_queue_wakes_a_waiter_at_once() -> None:
    wakeups = Wakeups(complete=True)
    waiting = asyncio.ensure_future(wakeups.wait_for_work(["a"], 10))
    await asyncio.sleep(0.01)
    wakeups.work(None)
    assert await elapsed(waiting) < 0.05


async def test_a_deaf_source_is_covered_by_looking_every_poll_interval() -> None:
    wakeups, looks = Wakeups(), Looks()
    waiting = asyncio.ensure_future(
        wakeups.wait_for_work(["a"], 10, poll_interval=0.05, work_due=looks)
    )
    await asyncio.sleep(0.3)
    assert looks.count >= 3 and not waiting.done()
    looks.due = True
    assert await elapsed(waiting) < 0.1


def wait_after_a_heard_claim(timeout: float) -> tuple[Wakeups, Looks, asyncio.Future[None]]:
    """A source hearing since before a claim of "a", and a wait on "a" that may look."""
    wakeups, looks = Wakeups(), Looks()
    wakeups.hearing()
    wakeups.claiming(["a"])
    waiting = asyncio.ensure_future(
        wakeups.wait_for_work(["a"], timeout, poll_interval=0.05, work_due=looks)
    )
    return wakeups, looks, waiting


async def test_a_source_heard_since_the_claim_is_trusted_without_looking() -> None:
    _, looks, waiting = wait_after_a_heard_claim(0.3)
    assert await elapsed(waiting) >= 0.25
    assert looks.count == 0


async def test_a_source_that_goes_deaf_makes_waiters_look_then_poll() -> None:
    wakeups, looks, waiting = wait_after_a_heard_claim(10)
    await asyncio.sleep(0.05)
    assert looks.count == 0
    wakeups.deaf()
    await asyncio.sleep(0.2)
    assert looks.count >= 3
    wakeups.hearing()  # back after a break: look once more, then trust it
    await asyncio.sleep(0.05)
    settled = looks.count
    await asyncio.sleep(0.2)
    assert looks.count == settled and not waiting.done()
    waiting.cancel()


async def test_a_hint_that_lands_during_a_look_is_not_lost() -> None:
    wakeups = Wakeups()

    async def look_while_a_push_lands() -> bool:
        wakeups.work(["a"])  # committed after the look read the table
        return False

    waiting = asyncio.ensure_future(
        wakeups.wait_for_work(["a"], 10, poll_interval=0.01, work_due=look_while_a_push_lands)
    )
    assert await elapsed(waiting) < 0.1


async def test_without_a_look_an_untrusted_wait_returns_for_the_callers_claim() -> None:
    wakeups = Wakeups()
    wakeups.hearing()
    wakeups.claiming(["a"])
    waiting = asyncio.ensure_future(wakeups.wait_for_work(["a"], 10))
    await asyncio.sleep(0.05)
    wakeups.deaf()  # the caller's claim is the look
    assert await elapsed(waiting) < 0.05


async def test_first_of_returns_the_first_and_cancels_the_rest() -> None:
    slow_cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            slow_cancelled.set()

    async def quick() -> str:
        await asyncio.sleep(0.01)
        return "quick"

    done = await first_of(slow(), quick(), timeout=5)
    assert [future.result() for future in done] == ["quick"]
    assert slow_cancelled.is_set()
    assert await first_of(asyncio.sleep(10), timeout=0.01) == []
