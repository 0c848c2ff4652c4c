"""The app the benchmarks run: one task that does nothing, so only shoal's cost is measured,
one that notes how long after its push it started, and one that notes when it started; and
two that keep their result (bench/results_latency.py): a no-op and an echo."""

import os
import time

from shoal import App

app = App()

LATENCY_LOG = "SHOAL_BENCH_LATENCY_LOG"
"""The file ``stamp`` appends to: one line per task, seconds from push to start."""
QUEUE_RATE = "SHOAL_BENCH_QUEUE_RATE"
"""A rate limit for the whole ``bench`` queue, in the worker processes (bench/limits.py)."""
TRACE = "SHOAL_BENCH_TRACE"
"""Where bench/wakeup_trace.py notes a worker's stages (bench/wakeup_latency.py --profile)."""


@app.task(queue="bench")
async def noop() -> None:
    """Nothing: the time per task is all queue overhead."""


@app.task(queue="bench", keep_result=600)
async def kept_noop() -> None:
    """Nothing, kept: ``noop`` with its (null) result stored, the cost of keep_result."""


@app.task(queue="bench", keep_result=600)
async def echo(n: int) -> int:
    """Returns ``n``: the round trip of a typed result."""
    return n


@app.task(queue="bench")
async def stamp(sent: float) -> None:
    """Append ``now - sent`` on the monotonic clock, which every process on a machine shares."""
    append_to_log(f"{time.monotonic() - sent}\n")


@app.task(queue="bench")
async def begin(n: int) -> None:
    """Append ``n`` and when it started on the monotonic clock (bench/wakeup_latency.py)."""
    note_start(n)


def note_start(n: int) -> None:
    """One line ``n monotonic-seconds`` in the latency log; every peer's handler calls it."""
    append_to_log(f"{n} {time.monotonic()}\n")


def append_to_log(line: str) -> None:
    """One write with O_APPEND: lines from several processes never interleave."""
    descriptor = os.open(os.environ[LATENCY_LOG], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


if os.environ.get(TRACE):  # bench/wakeup_latency.py --profile, in the worker
    from bench.wakeup_trace import install
    from shoal.backends import open_backend

    install(type(open_backend(os.environ["SHOAL_BACKEND_URL"])))


if os.environ.get(QUEUE_RATE):  # bench/limits.py, in the workers
    app.limit_queue("bench", os.environ[QUEUE_RATE])
