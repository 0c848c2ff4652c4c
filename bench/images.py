"""shoal's images built from the Dockerfiles and run: their size and how fast they start.

Builds them as the tests do (``tests/servers/docker.py``: a dockerd of its own, the
debootstrapped Debian base as ``PYTHON_IMAGE``) and prints JSON lines:

- ``image_build``: seconds per step of this run (the base's import, each ``docker build``;
  a rebuild with nothing changed takes about a second per image);
- ``image_size``: each image's size (MB, as ``docker images`` counts) and its layers;
- ``image_start``: p50/p95 over ``--runs`` of ``docker run --rm IMAGE --help`` (create, start,
  Python's imports, exit), and for the example worker image the time from ``docker run`` to
  its first task done on a real PostgreSQL (host network), then to its exit on
  ``docker stop``.

Usage: python bench/images.py [--runs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, quantile
from shoal.backends import open_backend
from shoal.core.models import TaskStatus
from tests.servers.docker import CACHE, DockerDaemon, Images, base_tarball, build_images
from tests.servers.postgres import PostgresServer


def seconds(values: list[float]) -> dict[str, float]:
    """p50 and p95 in seconds."""
    return {
        "p50_s": round(quantile(values, 50) / 1000, 3),
        "p95_s": round(quantile(values, 95) / 1000, 3),
    }


def done(url: str) -> int:
    async def run() -> int:
        async with open_backend(url) as backend:
            return len(await backend.list_tasks(statuses=[TaskStatus.DONE]))

    return asyncio.run(run())


def first_task(daemon: DockerDaemon, images: Images, server: PostgresServer) -> dict[str, float]:
    """``docker run`` to a task done, then ``docker stop`` to the container's exit."""
    url = server.url(server.create_database(f"bench_{uuid.uuid4().hex[:8]}"))
    environment = ["--network=host", "--env", f"SHOAL_BACKEND_URL={url}"]
    # `python tasks.py 0`, the example's main: migrates and pushes one checksum task.
    daemon.docker(
        "run", "--rm", *environment, "--entrypoint", "python", images.example, "tasks.py", "0"
    )  # fmt: skip
    name = f"shoal-bench-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    daemon.docker("run", "--detach", "--name", name, *environment, images.example)
    try:
        while done(url) < 1:
            if time.monotonic() - started > 60:
                raise TimeoutError(daemon.docker("logs", name, check=False).stderr[-2000:])
            time.sleep(0.02)
        to_first_task = time.monotonic() - started
        stopping = time.monotonic()
        daemon.docker("stop", "--time", "45", name, timeout=60)
        to_exit = time.monotonic() - stopping
        code = daemon.inspect("container", name)["State"]["ExitCode"]
    finally:
        daemon.docker("rm", "--force", name, check=False)
    if code != 0:
        raise RuntimeError(f"the worker exited {code} on docker stop")
    return {"first_task": to_first_task, "stop": to_exit}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    arguments = parser.parse_args()
    with (
        tempfile.TemporaryDirectory(prefix="shoal-bench-docker-") as folder,
        DockerDaemon(Path(folder), CACHE / "docker") as daemon,
        contextlib.ExitStack() as stack,
    ):
        images = build_images(daemon, base_tarball())
        emit("image_build", seconds={step: round(t, 1) for step, t in images.seconds})
        for name in [images.base, *images.names()]:
            found = daemon.inspect("image", name)
            emit(
                "image_size",
                image=name.split(":")[0] if name != images.base else "base (debootstrap)",
                mb=round(found["Size"] / 1e6, 1),
                layers=len(found["RootFS"]["Layers"]),
            )
        for name in images.names():
            runs = []
            for _ in range(arguments.runs):
                started = time.monotonic()
                daemon.docker("run", "--rm", name, "--help")
                runs.append(time.monotonic() - started)
            emit("image_start", image=name, command="--help", runs=len(runs), **seconds(runs))
        server = PostgresServer()
        server.start()
        stack.callback(server.stop)
        worker_runs = [first_task(daemon, images, server) for _ in range(arguments.runs)]
        emit(
            "image_start",
            image=images.example,
            command="worker: docker run to the first task done (PostgreSQL, host network)",
            runs=len(worker_runs),
            **seconds([r["first_task"] for r in worker_runs]),
        )
        emit(
            "image_stop",
            image=images.example,
            command="worker, idle: docker stop to exit 0",
            runs=len(worker_runs),
            **seconds([r["stop"] for r in worker_runs]),
        )


if __name__ == "__main__":
    main()
