"""A standby's health endpoint: the liveness URL answers while the operator waits for the
Lease, so the chart's probes pass on a standby (and a PodDisruptionBudget counts it), and
kopf's own endpoint takes the port over once this process leads."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from aiohttp import web


@contextlib.asynccontextmanager
async def serving_health(liveness: str) -> AsyncIterator[None]:
    """Answer ``GET <path of liveness>`` with 200 until the block ends; the port is free
    again when it does."""
    url = urlsplit(liveness)

    async def healthy(_: web.Request) -> web.Response:
        return web.json_response({"role": "standby"})

    app = web.Application()
    app.router.add_get(url.path or "/", healthy)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, url.hostname, url.port or 80, reuse_address=True).start()
        yield
    finally:
        await runner.cleanup()
