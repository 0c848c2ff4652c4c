"""The apps that the periodic tasks' end-to-end tests run in worker processes.

Each handler appends ``<event> <schedule> <tick epoch> <attempt> <pid> <time>`` to
``$SHOAL_TEST_LOG`` with one ``write`` on an ``O_APPEND`` file (a short line lands whole
even with several processes writing), so a test can count how often each tick ran, and how
late. One app per test, each with a name of its own.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta

from shoal import App, Context
from shoal.core.schedules import Missed


def record(event: str, context: Context) -> None:
    assert context.scheduled_at is not None
    schedule = context.metadata["shoal.schedule"]
    line = (
        f"{event} {schedule} {context.scheduled_at.timestamp():.0f} {context.attempt} "
        f"{os.getpid()} {time.time()}\n"
    )
    descriptor = os.open(os.environ["SHOAL_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


seconds = App(name="e2e-seconds")


@seconds.periodic(every=timedelta(seconds=1))
@seconds.task(queue="ticks")
async def every_second(context: Context) -> None:
    record("start", context)


slow = App(name="e2e-slow")


@slow.periodic(every=timedelta(seconds=4), grace=timedelta(seconds=20))
@slow.task(queue="ticks")
async def slow_tick(context: Context) -> None:
    """Long enough to be killed in the middle of."""
    record("start", context)
    await asyncio.sleep(2.0)
    record("end", context)


missed = App(name="e2e-missed")


@missed.task(queue="ticks")
async def policy(context: Context) -> None:
    record("start", context)


for _policy in Missed:
    missed.schedule(
        policy,
        name=f"missed-{_policy.value}",
        every=timedelta(seconds=10),
        missed=_policy,
        catch_up=3,
        grace=timedelta(seconds=5),
    )


two_minutes = App(name="e2e-two-minutes")


@two_minutes.periodic(cron="*/2 * * * *")
@two_minutes.task(queue="ticks")
async def every_two_minutes(context: Context) -> None:
    """What a pool at zero must be woken for, ahead of time."""
    record("start", context)
