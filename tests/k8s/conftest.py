"""The operator, run as a process against the test cluster, with the CRDs installed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

from shoal.backends import open_backend
from shoal.core.ids import new_id
from shoal.core.models import NewTask, utcnow
from tests.servers.kubernetes import KubernetesCluster
from tests.servers.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
T = TypeVar("T")


def eventually(check: Callable[[], T | None], timeout: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or check}")
        time.sleep(0.05)


class Operator:
    """``python -m shoal_operator`` against the cluster; its output goes to a file.

    By default it runs cluster-wide with the admin kubeconfig; ``kubeconfig`` runs it with
    other credentials (e.g. a ServiceAccount's token), ``args`` adds flags (``--namespace``)
    and ``log_format="json"`` logs as the chart runs it.
    """

    def __init__(
        self,
        cluster: KubernetesCluster,
        directory: Path,
        *,
        kubeconfig: Path | None = None,
        args: Sequence[str] = (),
        log_format: str = "text",
    ) -> None:
        self.cluster = cluster
        self.log = directory / "operator.log"
        self.metrics_port = free_port()
        self.liveness_port = free_port()
        env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig or cluster.kubeconfig),
            "SHOAL_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "SHOAL_OPERATOR_LOG_FORMAT": log_format,
        }
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "shoal_operator",
                    "--liveness",
                    f"http://127.0.0.1:{self.liveness_port}/healthz",
                    *args,
                ],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        eventually(self._alive, 60, "the operator's liveness endpoint")

    def _alive(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"the operator exited with {self.process.returncode}:\n"
                f"{self.log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.liveness_port}/healthz", timeout=2
            ) as page:
                return bool(page.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as page:
            return str(page.read().decode())

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture(scope="session")
def crds(kube_cluster: KubernetesCluster) -> KubernetesCluster:
    kube_cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    for name in ("queues.shoal.dev", "workerpools.shoal.dev"):
        kube_cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    return kube_cluster


@pytest.fixture(scope="module")
def operator(
    crds: KubernetesCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    """The operator for one test module: gone before the next module runs, so that a module
    running an operator of its own (the chart's) never shares the cluster with this one."""
    running = Operator(crds, tmp_path_factory.mktemp("operator"), log_format="json")
    yield running
    running.stop()


def apply(cluster: KubernetesCluster, namespace: str, *objects: dict[str, Any]) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)


def backend_objects(
    name: str,
    url: str,
    *,
    pool: dict[str, Any] | None = None,
    stats_interval: int = 1,
    queue_name: str | None = None,
) -> list[dict[str, Any]]:
    """A Secret with the URL, a Queue on it (``queue_name`` in the backend, default the
    object's name), and a WorkerPool for the queue; ``pool`` overrides spec fields."""
    autoscaling = {
        "minReplicas": 0,
        "maxReplicas": 5,
        "scaleDownStabilizationSeconds": 2,
        "idleCooldownSeconds": 3,
    }
    spec = {
        "queues": [{"name": name}],
        "image": "shoal-example:dev",
        "app": "tasks:app",
        "concurrency": 2,
        "shutdownTimeoutSeconds": 20,
        "autoscaling": autoscaling,
        **(pool or {}),
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": f"{name}-backend"},
            "stringData": {"url": url},
        },
        {
            "apiVersion": "shoal.dev/v1alpha1",
            "kind": "Queue",
            "metadata": {"name": name},
            "spec": {
                "backend": {"urlSecretRef": {"name": f"{name}-backend", "key": "url"}},
                "statsIntervalSeconds": stats_interval,
                **({"queueName": queue_name} if queue_name else {}),
            },
        },
        {
            "apiVersion": "shoal.dev/v1alpha1",
            "kind": "WorkerPool",
            "metadata": {"name": name},
            "spec": spec,
        },
    ]


def migrate(url: str) -> None:
    async def run() -> None:
        async with open_backend(url) as backend:
            await backend.setup()

    asyncio.run(run())


def push(url: str, queue: str, count: int) -> None:
    async def run() -> None:
        async with open_backend(url) as backend:
            await backend.push(
                [NewTask(new_id(), queue, "tasks.work", b"{}", utcnow(), 3) for _ in range(count)]
            )

    asyncio.run(run())


def enqueue_example(url: str, count: int) -> None:
    """The example's main (``examples/tasks.py``), as the README's ``kubectl run`` runs it:
    migrate, then push ``count`` thumbnails and one checksum."""
    subprocess.run(
        [sys.executable, "tasks.py", str(count)],
        cwd=ROOT / "examples",
        env={**os.environ, "SHOAL_BACKEND_URL": url},
        check=True,
        timeout=60,
        capture_output=True,
    )


def finish_all(url: str, queue: str) -> None:
    """Play the workers: claim everything due and ack it."""

    async def run() -> None:
        async with open_backend(url) as backend:
            while claims := await backend.claim([queue], "test-worker", 100, 30):
                await backend.ack([c.lease for c in claims])

    asyncio.run(run())


def replicas(cluster: KubernetesCluster, namespace: str, pool: str) -> int | None:
    found = cluster.kubectl(
        "get",
        "deployment",
        f"{pool}-workers",
        "-n",
        namespace,
        "-o",
        "jsonpath={.spec.replicas}",
        check=False,
    )
    return int(found.stdout) if found.returncode == 0 and found.stdout else None
