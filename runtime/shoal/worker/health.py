"""What a worker watches of its own process: its progress for the health endpoint, the
health file a probe may read, and the resident memory that recycling compares with
``max_rss_mb``.

The health endpoint (``--health-port``) answers from a thread of its own, so a probe gets
its answer within milliseconds however busy the event loop is, and judges only what the
loop last wrote down: when it last began and last finished a heartbeat. A loop that is
blocked (``time.sleep`` in an ``async def``) or stuck stops beginning heartbeats, and the
worker stops being live once a whole lease has passed without one: that is when its leases
expire and its tasks go to other workers, so a restart loses nothing more.

- ``GET /livez``: 200 while starting (start-up is bounded by ``startup_timeout``) and while
  every worker in the process began a heartbeat within ``lease_seconds``; else 503.
- ``GET /readyz``: 200 once every worker's last heartbeat succeeded within ``lease_seconds``
  and the backend's last health check passed; else 503.

Both answer a JSON object with the figures they judged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from shoal.backends import Backend
from shoal.core.errors import ConfigurationError, ShoalError
from shoal.core.models import BackendHealth


@dataclass(slots=True)
class Progress:
    """When a worker's loop last began and last finished a heartbeat (monotonic seconds).
    Written by the loop, read by the health thread: plain floats, so no lock is needed."""

    began: float | None = None
    succeeded: float | None = None

    def beginning(self) -> None:
        self.began = time.monotonic()

    def succeeding(self) -> None:
        self.succeeded = time.monotonic()


@dataclass(slots=True)
class HealthState:
    """Everything the endpoint judges; the worker process fills it in as it goes."""

    stale_after: float
    """Seconds without a heartbeat after which a worker is neither live nor ready."""
    workers: Sequence[Progress] = ()
    """Empty while starting up."""
    backend: BackendHealth | str | None = None
    """The backend's last health, or why it could not be had (None: not asked yet)."""
    started: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True)
class Verdict:
    live: bool
    ready: bool
    body: dict[str, object]


def judge(state: HealthState, now: float) -> Verdict:
    """Liveness by progress, readiness by success; pure, for the tests."""
    body: dict[str, object] = {"uptime": round(now - state.started, 3)}
    backend = state.backend
    if isinstance(backend, BackendHealth):
        body["backend"] = {
            "status": backend.status.value,
            "details": dict(backend.details),
            "warnings": list(backend.warnings),
        }
    elif backend is not None:
        body["backend"] = {"status": "failing", "error": backend}
    if not state.workers:
        body["status"] = "starting"
        return Verdict(live=True, ready=False, body=body)
    began = [_age(now, p.began) for p in state.workers]
    succeeded = [_age(now, p.succeeded) for p in state.workers]
    body["heartbeat_began_ago"] = began
    body["heartbeat_succeeded_ago"] = succeeded
    # A worker that has not begun its first heartbeat yet is starting, not stuck.
    live = all(age is None or age <= state.stale_after for age in began)
    ready = all(age is not None and age <= state.stale_after for age in succeeded) and (
        isinstance(backend, BackendHealth)
    )
    body["status"] = "ready" if live and ready else "live" if live else "stalled"
    return Verdict(live=live, ready=live and ready, body=body)


def _age(now: float, stamp: float | None) -> float | None:
    return None if stamp is None else round(now - stamp, 3)


class _Handler(BaseHTTPRequestHandler):
    state: HealthState

    def do_GET(self) -> None:
        verdict = judge(self.state, time.monotonic())
        if self.path == "/livez":
            passed = verdict.live
        elif self.path == "/readyz":
            passed = verdict.ready
        else:
            self.send_error(404, "try /livez or /readyz")
            return
        payload = json.dumps(verdict.body).encode()
        self.send_response(200 if passed else 503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass  # a probe every few seconds is not news


@contextlib.asynccontextmanager
async def serve_health(
    address: str, port: int, state: HealthState, backend: Backend, *, every: float
) -> AsyncIterator[HealthState]:
    """Serve ``state`` on ``address:port`` from a thread, and ask ``backend`` for its health
    every ``every`` seconds on the loop, until the block ends."""
    handler = type("HealthHandler", (_Handler,), {"state": state})
    try:
        server = ThreadingHTTPServer((address, port), handler)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve health on {address}:{port}: {exc}") from exc
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="shoal-health", daemon=True)
    thread.start()
    refresher = asyncio.create_task(_refresh(state, backend, every), name="shoal health")
    try:
        yield state
    finally:
        refresher.cancel()
        await asyncio.gather(refresher, return_exceptions=True)
        server.shutdown()
        server.server_close()


async def _refresh(state: HealthState, backend: Backend, every: float) -> None:
    while True:
        if state.workers:  # until then the start-up is asking the backend itself
            try:
                async with asyncio.timeout(every):
                    state.backend = await backend.health()
            except ShoalError as error:
                state.backend = str(error)
            except TimeoutError:
                state.backend = f"no answer within {every:g}s ({backend.url})"
        await asyncio.sleep(every)


def touch_health_file(path: Path) -> None:
    """Mark the loop alive; the folder may be new (a pod's /tmp is an empty emptyDir)."""
    try:
        path.touch()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def resident_memory_mb() -> float:
    """Current resident set size, from /proc where there is one."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
