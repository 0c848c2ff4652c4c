"""The app that worker processes of the end-to-end tests run.

Each handler appends ``<event> <task id> <attempt> <pid> <time>`` to ``$SHOAL_TEST_LOG`` with one
``write`` of a short line on an ``O_APPEND`` file, which lands whole even with several
processes writing, so a test can count how often each task ran.
"""

from __future__ import annotations

import asyncio
import os
import time

from shoal import App, Context, RetryPolicy

app = App()


def record(event: str, context: Context) -> None:
    line = f"{event} {context.task_id} {context.attempt} {os.getpid()} {time.time()}\n"
    descriptor = os.open(os.environ["SHOAL_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(descriptor, line.encode())
    finally:
        os.close(descriptor)


@app.task(queue="e2e")
async def work(context: Context, seconds: float = 0.0) -> None:
    record("start", context)
    cap = float(os.environ.get("SHOAL_TEST_MAX_SLEEP", "inf"))
    await asyncio.sleep(min(seconds, cap))
    record("end", context)


@app.task(queue="e2e", retry=RetryPolicy(max_attempts=5, base_delay=0.3, multiplier=2, jitter=0))
async def fail_twice(context: Context) -> None:
    record("start", context)
    if context.attempt < 3:
        raise ConnectionError(f"attempt {context.attempt} fails")
    record("end", context)


@app.task(queue="e2e")
async def ignore_cancellation(context: Context, seconds: float = 60.0) -> None:
    """A hostile handler: it swallows the drain's cancellation and sleeps on."""
    record("start", context)
    cap = float(os.environ.get("SHOAL_TEST_MAX_SLEEP", "inf"))
    try:
        await asyncio.sleep(min(seconds, cap))
    except asyncio.CancelledError:
        record("ignored", context)
        await asyncio.sleep(min(seconds, cap))
    record("end", context)


@app.task(queue="e2e")
async def block_the_loop(context: Context, seconds: float = 2.0) -> None:
    """A hostile handler: it blocks the event loop (``time.sleep`` in async code)."""
    record("start", context)
    time.sleep(seconds)  # noqa: ASYNC251  # the point of the test
    record("end", context)


@app.task(queue="e2e")
def patient(context: Context, seconds: float = 60.0) -> None:
    """A plain function that looks for a cancel request now and then, as one should."""
    record("start", context)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if context.cancel_requested:
            record("stopping", context)
            context.raise_if_cancelled()
        time.sleep(0.02)
    record("end", context)


@app.task(queue="e2e-keyed", concurrency_key="{key}", concurrency_limit=2)
async def keyed(context: Context, key: str, seconds: float = 0.05) -> None:
    """At most two tasks with one ``key`` run at a time, across every worker."""
    record("start", context)
    await asyncio.sleep(seconds)
    record("end", context)


@app.task(queue="e2e-paced", rate_limit="100/s")
async def paced(context: Context) -> None:
    """At most 100 start per second, across every worker."""
    record("start", context)
