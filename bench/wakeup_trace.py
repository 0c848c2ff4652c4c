"""Where a wake-up's time goes inside a worker: ``bench/wakeup_latency.py --profile``.

Imported by ``bench.noop_app`` in a worker process when ``SHOAL_BENCH_TRACE`` names a file,
it wraps the shared wake-ups and the backend's claim and appends, for every task a claim
returns, one JSON line: the task's ``n`` and the monotonic times of the last hint before
the claim (the listener heard the push), the wait returning, the claim starting and the
claim returning. The handler's start is in the latency log as usual.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from bench.noop_app import TRACE
from shoal.backends import Backend
from shoal.backends.shared.wakeups import Wakeups

_last: dict[str, float] = {"hint": 0.0, "woke": 0.0}


def install(backend_class: type[Backend]) -> None:
    """Wrap :class:`Wakeups` and ``backend_class.claim`` to note the stages."""
    target = os.environ[TRACE]
    work, wait, claim = Wakeups.work, Wakeups.wait_for_work, backend_class.claim

    @functools.wraps(work)
    def noted_work(self: Wakeups, queues: Any) -> None:
        _last["hint"] = time.monotonic()
        work(self, queues)

    @functools.wraps(wait)
    async def noted_wait(self: Wakeups, *args: Any, **kwargs: Any) -> None:
        await wait(self, *args, **kwargs)
        _last["woke"] = time.monotonic()

    @functools.wraps(claim)
    async def noted_claim(self: Backend, queues: Sequence[str], *args: Any) -> Any:
        hint, woke, started = _last["hint"], _last["woke"], time.monotonic()
        claims = await claim(self, queues, *args)
        returned = time.monotonic()
        lines = [
            json.dumps([json.loads(found.task.payload)["n"], hint, woke, started, returned])
            for found in claims
        ]
        if lines:  # after the handlers started: the note costs them nothing
            asyncio.get_running_loop().call_later(0.05, note, "".join(f"{x}\n" for x in lines))
        return claims

    def note(lines: str) -> None:
        with open(target, "a") as log:
            log.write(lines)

    Wakeups.work = noted_work  # type: ignore[method-assign]
    Wakeups.wait_for_work = noted_wait  # type: ignore[method-assign]
    backend_class.claim = noted_claim  # type: ignore[method-assign]
