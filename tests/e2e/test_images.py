"""shoal's images, built from the repository's Dockerfiles and run in containers for real.

The images come from ``tests/servers/docker.py`` (a dockerd of the session's own, a locally
made Debian base as ``PYTHON_IMAGE``). Here they run: the entrypoints answer ``--help``; the
example worker image drains on ``docker stop`` against a real PostgreSQL on the host's
loopback and exits 0; and no image carries the machine's CA certificates, which only the build
saw (as a BuildKit secret).
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from shoal.backends import open_backend
from shoal.core.models import TaskStatus
from tests.servers.docker import DockerDaemon, Images

THUMBNAILS = 3
"""Two-second tasks ``python tasks.py 3`` pushes (plus one checksum)."""
MACHINE_CAS = sorted(Path("/usr/local/share/ca-certificates").glob("**/*.crt"))


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.1)


def queue_figures(url: str) -> tuple[int, int, int]:
    """(running, unfinished, done) on the example's queue."""

    async def read() -> tuple[int, int, int]:
        async with open_backend(url) as backend:
            figures = (await backend.stats(["thumbnails"]))["thumbnails"]
            done = await backend.list_tasks(statuses=[TaskStatus.DONE])
            return figures.running, figures.ready + figures.scheduled + figures.running, len(done)

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("image", "usage"),
    [("runtime", "usage: shoal"), ("operator", "usage: shoal-operator")],
)
def test_each_image_runs_its_entrypoint(
    docker_daemon: DockerDaemon, shoal_images: Images, image: str, usage: str
) -> None:
    name = getattr(shoal_images, image)
    result = docker_daemon.docker("run", "--rm", name, "--help")
    assert usage in result.stdout, result.stdout
    config = docker_daemon.inspect("image", name)["Config"]
    assert config["User"] == "10001:10001"


def test_the_example_worker_drains_on_docker_stop_and_exits_0(
    docker_daemon: DockerDaemon, shoal_images: Images, postgres_url: str
) -> None:
    environment = ["--network=host", "--env", f"SHOAL_BACKEND_URL={postgres_url}"]
    # The image enqueues its own tasks: `python tasks.py N` is the example's main.
    docker_daemon.docker(
        "run", "--rm", *environment, "--entrypoint", "python", shoal_images.example,
        "tasks.py", str(THUMBNAILS),
    )  # fmt: skip
    container = f"shoal-test-{uuid.uuid4().hex[:10]}"
    docker_daemon.docker("run", "--detach", "--name", container, *environment, shoal_images.example)
    try:
        wait_until(lambda: queue_figures(postgres_url)[0] >= 1, 60, "a task running")
        started = time.monotonic()
        # --time 45: longer than the drain (Docker's default of 10 s may cut a long task).
        docker_daemon.docker("stop", "--time", "45", container, timeout=60)
        stopped_in = time.monotonic() - started
        state = docker_daemon.inspect("container", container)["State"]
        output = docker_daemon.docker("logs", container)  # the worker logs to stderr
        logs = output.stdout + output.stderr
    finally:
        docker_daemon.docker("rm", "--force", container, check=False)
    assert state["ExitCode"] == 0 and not state["OOMKilled"], (state, logs[-2000:])
    assert stopped_in < 15, f"the drain waited for 2 s tasks, not the timeout: {stopped_in:.1f} s"
    assert queue_figures(postgres_url) == (0, 0, THUMBNAILS + 1)
    assert "stopped after" in logs


FIND = """
import os, sys
marker = sys.argv[1].encode()
for top in ("/etc", "/usr", "/opt", "/app", "/root", "/var"):
    for directory, _, files in os.walk(top):
        for name in files:
            path = os.path.join(directory, name)
            try:
                if os.path.isfile(path) and os.path.getsize(path) < 50_000_000:
                    with open(path, "rb") as f:
                        if marker in f.read():
                            print(path)
            except OSError:
                pass
"""


@pytest.mark.skipif(not MACHINE_CAS, reason="this machine adds no CA certificate of its own")
@pytest.mark.parametrize("image", ["runtime", "operator", "example"])
def test_no_image_carries_the_machines_ca_certificates(
    docker_daemon: DockerDaemon, shoal_images: Images, image: str
) -> None:
    name = getattr(shoal_images, image)
    history = docker_daemon.docker("history", "--no-trunc", "--format", "{{json .}}", name).stdout
    for certificate in MACHINE_CAS:
        body = "".join(
            line for line in certificate.read_text().splitlines() if not line.startswith("-----")
        )
        marker = body[64:128]  # past the header every certificate shares
        assert base64.b64decode(body), certificate  # a real PEM body, so the marker is too
        assert marker not in history
        found = docker_daemon.docker(
            "run", "--rm", "--user", "0", "--entrypoint", "python3", name, "-c", FIND, marker
        ).stdout.split()
        assert not found, f"{certificate.name} is in {name}: {found}"
