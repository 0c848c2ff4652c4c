"""The worker's HTTP health endpoint (``--health-port``), probed as a kubelet would: a real
``shoal worker`` subprocess on SQLite, its loop blocked by a handler that sleeps without
awaiting, and a start-up against a backend that is not there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, migrate, wait_for
from tests.servers.ports import free_port

BLOCKING_APP = """\
import time
from shoal import App

app = App()


@app.task(queue="health")
async def block(seconds: float) -> None:
    time.sleep(seconds)  # the mistake the probe must catch: the loop stops
"""


def probe(port: int, path: str) -> tuple[int, dict[str, object], float]:
    """(status, body, seconds) of one GET, as a kubelet's httpGet probe sends it."""
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as answer:
            status, body = answer.status, answer.read()
    except urllib.error.HTTPError as error:
        status, body = error.code, error.read()
    found = json.loads(body) if body.startswith(b"{") else {}
    return status, found, time.perf_counter() - started


def answers(port: int, path: str, status: int) -> bool:
    try:
        return probe(port, path)[0] == status
    except (urllib.error.URLError, ConnectionError):
        return False


class Worker:
    def __init__(self, tmp_path: Path, url: str, *flags: str) -> None:
        (tmp_path / "blocking_tasks.py").write_text(BLOCKING_APP)
        self.port = free_port()
        self.url = url
        self.output = tmp_path / "worker.out"
        self.environment = {**os.environ, "PYTHONPATH": f"{tmp_path}:{ROOT}"}
        arguments = ["worker", "blocking_tasks:app", "--backend-url", url]
        arguments += ["--health-port", str(self.port), "--health-address", "127.0.0.1"]
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "shoal", *arguments, *flags],
                cwd=tmp_path,
                env=self.environment,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def enqueue(self, seconds: float) -> None:
        arguments = ["enqueue", "blocking_tasks.block", "--app", "blocking_tasks:app"]
        arguments += ["--backend-url", self.url, "--args", json.dumps({"seconds": seconds})]
        subprocess.run(
            [sys.executable, "-m", "shoal", *arguments],
            env=self.environment,
            cwd=self.output.parent,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(10)


@pytest.fixture
def started(tmp_path: Path, sqlite_url: str) -> Iterator[Worker]:
    migrate(sqlite_url)
    worker = Worker(tmp_path, sqlite_url, "--lease-seconds", "2", "--poll-interval", "0.1")
    yield worker
    worker.stop()


def test_a_worker_serves_liveness_and_readiness(started: Worker) -> None:
    wait_for(lambda: answers(started.port, "/readyz", 200), 20, "ready")
    status, body, _ = probe(started.port, "/livez")
    assert status == 200 and body["status"] == "ready"
    assert body["backend"] == {"status": "ok", "details": {}, "warnings": []}
    assert probe(started.port, "/metrics")[0] == 404


def test_a_blocked_loop_fails_liveness_and_the_probe_still_answers_at_once(
    started: Worker,
) -> None:
    wait_for(lambda: answers(started.port, "/livez", 200), 20, "live")
    started.enqueue(seconds=6)
    timings = []

    def stalled() -> bool:
        status, body, seconds = probe(started.port, "/livez")
        timings.append(seconds)
        return status == 503 and body["status"] == "stalled"

    wait_for(stalled, 10, "liveness to fail while the loop is blocked")
    assert max(timings) < 0.5, timings  # answered from its own thread, loop or no loop
    assert probe(started.port, "/readyz")[0] == 503
    wait_for(lambda: answers(started.port, "/livez", 200), 15, "live again once unblocked")


def test_a_starting_worker_is_live_and_not_ready(tmp_path: Path) -> None:
    worker = Worker(tmp_path, f"redis://127.0.0.1:{free_port()}/0", "--startup-timeout", "30")
    try:
        wait_for(lambda: answers(worker.port, "/livez", 200), 20, "live while starting")
        status, body, _ = probe(worker.port, "/readyz")
        assert status == 503 and body["status"] == "starting"
    finally:
        worker.stop()
