"""A worker process started while its backend is not there: it retries for
``--startup-timeout`` seconds, then exits 3; SIGTERM meanwhile exits 0; a backend that comes
up in time is used. Real ``shoal worker`` subprocesses, a real Redis started late."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.conftest import ROOT, migrate, push, wait_for
from tests.servers.ports import free_port
from tests.servers.redis import RedisServer

APP = "tests.e2e.sample_app:app"


def start_worker(url: str, output: Path, *flags: str) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "SHOAL_TEST_LOG": str(output.with_suffix(".events"))}
    with output.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "shoal", "worker", APP, "--backend-url", url, *flags],
            cwd=ROOT,
            env=environment,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def test_an_unreachable_backend_is_retried_then_exits_3(tmp_path: Path) -> None:
    url = f"postgresql://app:hunter2@127.0.0.1:{free_port()}/jobs"
    output = tmp_path / "worker.out"
    started = time.monotonic()
    worker = start_worker(url, output, "--startup-timeout", "2")
    code = worker.wait(30)
    elapsed = time.monotonic() - started
    text = output.read_text()
    assert code == 3, text
    assert 2 <= elapsed < 15
    retries = [line for line in text.splitlines() if "backend not ready, try" in line]
    assert len(retries) >= 2, text
    assert "not ready within 2s of start-up" in text.splitlines()[-1]
    assert "Traceback" not in text and "hunter2" not in text


def test_sigterm_during_start_up_exits_0(tmp_path: Path) -> None:
    output = tmp_path / "worker.out"
    worker = start_worker(f"redis://127.0.0.1:{free_port()}/0", output)
    try:
        wait_for(lambda: "backend not ready" in output.read_text(), 20, "a first retry")
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 0, output.read_text()
    finally:
        worker.kill()
        worker.wait(10)
    assert "stopped during start-up" in output.read_text()


def test_a_backend_that_comes_up_in_time_is_used(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    url = server.url(prefix="late")
    output = tmp_path / "worker.out"
    worker = start_worker(url, output, "--max-tasks", "1", "--poll-interval", "0.1")
    try:
        wait_for(lambda: "backend not ready" in output.read_text(), 20, "a first retry")
        server.start()
        migrate(url)
        push(url, [{"seconds": 0.0}])
        assert worker.wait(30) == 0, output.read_text()
    finally:
        worker.kill()
        worker.wait(10)
        server.stop()
    assert "start" in output.with_suffix(".events").read_text()
