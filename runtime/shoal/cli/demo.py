"""``shoal demo``: sample tasks through a real worker on the embedded backend.

It shows what a newcomer should see in the first minute: tasks pushed in one batch, run with
a concurrency limit, retried with backoff, a bad payload ending dead with its reason, and the
figures at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import time
from pathlib import Path

from shoal.app import App
from shoal.core.context import Context
from shoal.core.errors import Retry
from shoal.core.models import NewTask, TaskStatus, utcnow
from shoal.core.retry import RetryPolicy
from shoal.core.settings import WorkerSettings
from shoal.worker import Worker

demo_app = App(retry=RetryPolicy(max_attempts=4, base_delay=0.2, max_delay=1.0))


@demo_app.task(queue="images")
async def resize_image(image_id: int, width: int = 640) -> None:
    """Pretend to resize an image: an I/O-bound coroutine."""
    await asyncio.sleep(random.uniform(0.005, 0.03))


@demo_app.task(queue="emails")
async def send_email(context: Context, to: str, subject: str) -> None:
    """Fail now and then on the first attempt, as a flaky SMTP server would."""
    if context.attempt == 1 and random.random() < 0.15:
        raise Retry(delay=0.3, reason="the SMTP server said 421, try again later")
    await asyncio.sleep(random.uniform(0.005, 0.02))


@demo_app.task(queue="reports")
def build_report(rows: int) -> None:
    """A plain function: it runs in the worker's thread pool."""
    sum(i * i for i in range(rows))


async def run(arguments: argparse.Namespace) -> int:
    url: str = arguments.backend_url
    if url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)  # noqa: ASYNC240
    demo_app.backend_url = url
    # The progress line tells the story; per-task log lines would scroll it away.
    logging.getLogger("shoal.worker").setLevel(logging.CRITICAL)
    total = max(int(arguments.tasks), 4)
    async with demo_app:
        await demo_app.backend.setup()
        await _push_samples(total)
        print(f"pushed {total} tasks to {demo_app.backend.url} in one batch")
        settings = WorkerSettings(concurrency=arguments.concurrency, poll_interval=0.1)
        worker = Worker(demo_app, settings)
        started = time.perf_counter()
        running = asyncio.create_task(worker.run())
        await _show_progress(total, started)
        worker.stop("the demo is over")
        await running
        await _summary(total, time.perf_counter() - started, url)
    return 0


async def _push_samples(total: int) -> None:
    images = resize_image.configure()
    emails = send_email.configure(priority=5)
    reports = build_report.configure(delay=0.5)
    tasks: list[NewTask] = []
    for number in range(total - 1):
        kind = number % 4
        if kind in (0, 1):
            tasks.append(images.prepare(image_id=number))
        elif kind == 2:
            tasks.append(emails.prepare(to=f"user{number}@example.com", subject="Welcome"))
        else:
            tasks.append(reports.prepare(rows=20_000))
    # One payload that no longer fits its handler (as after a careless deploy): it ends dead
    # with the reason, and the worker carries on.
    broken = images.prepare(image_id=0)
    tasks.append(
        NewTask(
            broken.id,
            broken.queue,
            broken.name,
            b'{"image_id": "not a number"}',
            utcnow(),
            broken.max_attempts,
        )
    )
    await demo_app.push_many(tasks)


async def _show_progress(total: int, started: float) -> None:
    interactive = sys.stdout.isatty()
    last_print = 0.0
    while True:
        stats = await demo_app.backend.stats(demo_app.queues)
        finished = total - sum(s.ready + s.scheduled + s.running for s in stats.values())
        dead = sum(s.dead for s in stats.values())
        elapsed = time.perf_counter() - started
        bar = "#" * (30 * finished // total)
        line = (
            f"[{bar:<30}] {finished}/{total} finished · {dead} dead · "
            f"{finished / max(elapsed, 1e-9):.0f} tasks/s"
        )
        if interactive:
            print(f"\r{line}", end="", flush=True)
        elif elapsed - last_print >= 1 or finished == total:
            print(line, flush=True)
            last_print = elapsed
        if finished >= total:
            break
        await asyncio.sleep(0.2)
    if interactive:
        print()


async def _summary(total: int, elapsed: float, url: str) -> None:
    backend = demo_app.backend
    done = await backend.list_tasks(statuses=[TaskStatus.DONE], limit=total)
    dead = await backend.list_tasks(statuses=[TaskStatus.DEAD], limit=total)
    retried = sum(1 for task in done if task.attempts > 1)
    print(
        f"\n{len(done)} done, {len(dead)} dead, {retried} succeeded after a retry, "
        f"in {elapsed:.1f}s ({total / elapsed:.0f} tasks/s)"
    )
    for task in dead:
        print(f"dead: {task.name} {task.id}\n      {task.last_error}")
    print(
        f"\nLook around:\n  shoal queues --backend-url {url}\n"
        f"  shoal jobs list --status dead --backend-url {url}\n"
        f"  shoal jobs retry --status dead --dry-run --backend-url {url}"
    )
