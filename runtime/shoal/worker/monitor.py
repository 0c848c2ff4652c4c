"""Running workers in a process: signals start the drain, several workers share one loop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence

from shoal.worker.worker import Worker

logger = logging.getLogger("shoal.worker")


async def run_workers(workers: Sequence[Worker]) -> None:
    """Run ``workers`` until each has drained.

    SIGTERM or SIGINT stops every worker from claiming and lets running tasks finish within
    their ``shutdown_timeout`` (on Kubernetes: a pod deletion or scale-down); a second signal
    releases what is still running at once. A worker that stops by itself (recycling, or a
    task asking) stops the others too, so the process exits for its supervisor to restart.
    """
    loop = asyncio.get_running_loop()
    installed = []
    for number in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(number, _stop_all, workers, signal.Signals(number).name)
            installed.append(number)
        except (NotImplementedError, RuntimeError):  # not the main thread, or Windows
            pass
    runs = [asyncio.create_task(worker.run()) for worker in workers]
    try:
        for finished in asyncio.as_completed(runs):
            await finished
            _stop_all(workers, "another worker of this process stopped")
    finally:
        for number in installed:
            loop.remove_signal_handler(number)
        for run in runs:
            run.cancel()
        await asyncio.gather(*runs, return_exceptions=True)


def _stop_all(workers: Sequence[Worker], reason: str) -> None:
    for worker in workers:
        if worker.stop_reason is None or reason in ("SIGTERM", "SIGINT"):
            worker.stop(f"received {reason}" if reason.startswith("SIG") else reason)
