"""The apps bench/schedules.py runs: one every-second schedule whose handler notes how late
each tick started, and 1,000 hourly schedules that sit idle."""

import os
import time
from datetime import timedelta

from shoal import App, Context

LATENESS_LOG = "SHOAL_BENCH_LATENESS_LOG"
"""The file ``every_second`` appends to: one line per tick, its moment and its lateness."""

seconds = App(name="bench-seconds")


@seconds.periodic(every=timedelta(seconds=1))
@seconds.task(queue="ticks")
async def every_second(context: Context) -> None:
    assert context.scheduled_at is not None
    late = time.time() - context.scheduled_at.timestamp()
    descriptor = os.open(os.environ[LATENESS_LOG], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, f"{context.scheduled_at.timestamp():.0f} {late:.6f}\n".encode())
    finally:
        os.close(descriptor)


many = App(name="bench-many")


@many.task(queue="ticks")
async def hourly(n: int) -> None:
    """Never due while the benchmark measures (hourly, spread over the hour)."""


for number in range(1000):
    many.schedule(
        hourly,
        name=f"hourly-{number:04d}",
        every=timedelta(hours=1),
        args={"n": number},
        jitter=timedelta(minutes=50),
    )
