"""The commands the images run, run here as processes: no container engine needed.

Two commands, each taken from where it is defined rather than retyped:

- ``docker run shoal-example:dev``: the runtime image's ENTRYPOINT plus the example image's
  CMD (``shoal worker tasks:app``), parsed from the Dockerfiles, in a copy of ``examples/``
  as the working directory (the image's /app), as PID 1 of a fresh PID namespace as in a
  container;
- a worker pod: the operator's rendered container ``command`` + ``args`` and ``env``, with
  the Secret's value filled in as the kubelet would, ``/tmp`` a scratch folder (the pod's
  emptyDir) and the metrics port a free one; its liveness probe command is run too.

Each gets SIGTERM while tasks run and must finish them and exit 0: the drain the pod's
terminationGracePeriodSeconds is sized for. SQLite stands in for the Secret's backend.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from shoal.backends import open_backend
from shoal.core.models import TaskStatus
from shoal_operator.rendering import render_deployment
from shoal_operator.spec import SecretKey, parse_worker_pool
from tests.dockerfile import DOCKERFILE, EXAMPLE, parse
from tests.servers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
ROOT_FILE = parse(DOCKERFILE)
THUMBNAILS = 3
"""Two-second tasks pushed by ``python tasks.py 3``, plus one checksum."""


def console_script(name: str) -> str:
    """The installed console script, as the image's PATH (/opt/shoal/bin) finds it."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"no {name} console script: `pip install -e .`"
    return found


def stats(url: str) -> tuple[int, int, int]:
    """(running, unfinished, done) on the example's queue."""

    async def read() -> tuple[int, int, int]:
        async with open_backend(url) as backend:
            figures = (await backend.stats(["thumbnails"]))["thumbnails"]
            done = await backend.list_tasks(statuses=[TaskStatus.DONE])
            unfinished = figures.ready + figures.scheduled + figures.running
            return figures.running, unfinished, len(done)

    return asyncio.run(read())


def wait_for(check: Any, timeout: float, what: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert process.poll() is None, f"the worker exited with {process.returncode}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def app_dir(tmp_path: Path, sqlite_url: str) -> Path:
    """The image's /app: the example's tasks.py, with its tasks enqueued by its own main."""
    directory = tmp_path / "app"
    directory.mkdir()
    shutil.copy(ROOT / "examples" / "tasks.py", directory)
    subprocess.run(
        [sys.executable, "tasks.py", str(THUMBNAILS)],
        cwd=directory,
        env={**os.environ, "SHOAL_BACKEND_URL": sqlite_url},
        check=True,
        timeout=60,
        capture_output=True,
    )
    return directory


def drain_and_check(process: subprocess.Popen[bytes], signal_target: int, url: str) -> None:
    """SIGTERM while tasks run: every task finishes, the process exits 0."""
    wait_for(lambda: stats(url)[0] >= 1, 30, "a running task", process)
    os.kill(signal_target, signal.SIGTERM)
    started = time.monotonic()
    assert process.wait(30) == 0
    assert time.monotonic() - started < 10  # the drain waited for 2 s tasks, not the timeout
    running, unfinished, done = stats(url)
    assert (running, unfinished, done) == (0, 0, THUMBNAILS + 1)


def test_the_example_image_command_drains_on_sigterm_as_pid_1(
    app_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    [runtime] = [s for s in ROOT_FILE.stages if s.name == "runtime"]
    entrypoint = runtime.last("ENTRYPOINT")
    cmd = parse(EXAMPLE).stages[-1].last("CMD")
    assert entrypoint is not None and cmd is not None
    argv = [*(entrypoint.exec_form() or []), *(cmd.exec_form() or [])]
    assert argv == ["shoal", "worker", "tasks:app"]
    argv[0] = console_script(argv[0])
    # unshare forks the worker as PID 1 of a new PID namespace and waits for it, as a
    # container runtime does; the signal goes to the worker itself, as `docker stop` sends it.
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--kill-child", *argv],
            cwd=app_dir,
            env={**os.environ, "SHOAL_BACKEND_URL": sqlite_url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: _child(process.pid) is not None, 10, "the worker process", process)
        worker = _child(process.pid)
        assert worker is not None
        nspid = _status(worker, "NSpid").split()
        assert nspid[-1] == "1", f"the worker is not PID 1 of its namespace: NSpid {nspid}"
        drain_and_check(process, worker, sqlite_url)
    finally:
        _stop(process)
    assert "stopped after" in (tmp_path / "worker.log").read_text()


def pod_container(url_secret: SecretKey) -> dict[str, Any]:
    body = {
        "metadata": {"name": "thumbnails", "namespace": "default"},
        "spec": {
            "queues": [{"name": "thumbnails"}],
            "image": "shoal-example:dev",
            "app": "tasks:app",
            "shutdownTimeoutSeconds": 20,
        },
    }
    rendered = render_deployment(
        parse_worker_pool(body),
        owner_uid="uid",
        queue_names=["thumbnails"],
        url_secret=url_secret,
        replicas=1,
    )
    pod = rendered["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > 20
    [container] = pod["containers"]
    return dict(container)


def pod_environment(container: dict[str, Any], secret_value: str) -> dict[str, str]:
    """The container's env as the kubelet resolves it (Secret and downward API)."""
    env = dict(os.environ)
    for variable in container["env"]:
        source = variable.get("valueFrom")
        if source is None:
            env[variable["name"]] = variable["value"]
        elif "secretKeyRef" in source:
            env[variable["name"]] = secret_value
        else:
            assert source["fieldRef"]["fieldPath"] == "metadata.name"
            env[variable["name"]] = "thumbnails-workers-abc12"
    return env


def localise(argv: list[str], scratch: Path, metrics_port: int, health_port: int) -> list[str]:
    """``/tmp/...`` into the pod's scratch emptyDir; the metrics and health ports onto free
    ones (the pod's own network namespace, here the machine's)."""
    out = [str(scratch / a.removeprefix("/tmp/")) if a.startswith("/tmp/") else a for a in argv]
    for flag, port in (("--metrics-port", metrics_port), ("--health-port", health_port)):
        if flag in out:
            out[out.index(flag) + 1] = str(port)
    out[0] = console_script(out[0])
    return out


def http_probe(probe: dict[str, Any], ports: dict[str, int]) -> bool:
    """One httpGet probe as the kubelet sends it: 2xx or 3xx within timeoutSeconds."""
    get = probe["httpGet"]
    url = f"http://127.0.0.1:{ports[get['port']]}{get['path']}"
    try:
        with urllib.request.urlopen(url, timeout=probe["timeoutSeconds"]) as answer:
            return 200 <= answer.status < 400
    except (urllib.error.URLError, ConnectionError):
        return False


def test_the_worker_pod_command_passes_its_probe_and_drains_on_sigterm(
    app_dir: Path, sqlite_url: str, tmp_path: Path
) -> None:
    container = pod_container(SecretKey("shoal-backend", "url"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()  # the pod's emptyDir on /tmp starts empty: no /tmp/shoal for the file
    ports = {"metrics": free_port(), "health": free_port()}
    argv = [*container["command"], *container["args"]]
    argv = localise(argv, scratch, ports["metrics"], ports["health"])
    env = pod_environment(container, sqlite_url)
    with (tmp_path / "worker.log").open("wb") as log:
        process = subprocess.Popen(argv, cwd=app_dir, env=env, stdout=log, stderr=log)
    try:
        probes = [container["livenessProbe"], container["readinessProbe"]]
        wait_for(
            lambda: all(http_probe(probe, ports) for probe in probes),
            30,
            "the liveness and readiness probes to pass",
            process,
        )
        drain_and_check(process, process.pid, sqlite_url)
    finally:
        _stop(process)
    assert '"message"' in (tmp_path / "worker.log").read_text()  # SHOAL_LOG_FORMAT=json


def _child(pid: int) -> int | None:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    found = children.read_text().split() if children.exists() else []
    return int(found[0]) if found else None


def _status(pid: int, key: str) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return line.partition(":")[2].strip()
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)
