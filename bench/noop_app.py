"""The app the benchmarks run: one task that does nothing, so only shoal's cost is measured,
and one that notes how long after its push it started."""

import os
import time

from shoal import App

app = App()

LATENCY_LOG = "SHOAL_BENCH_LATENCY_LOG"
"""The file ``stamp`` appends to: one line per task, seconds from push to start."""


@app.task(queue="bench")
async def noop() -> None:
    """Nothing: the time per task is all queue overhead."""


@app.task(queue="bench")
async def stamp(sent: float) -> None:
    """Append ``now - sent`` on the monotonic clock, which every process on a machine shares."""
    line = f"{time.monotonic() - sent}\n".encode()
    descriptor = os.open(os.environ[LATENCY_LOG], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line)
    finally:
        os.close(descriptor)
