"""End-to-end scenarios on the test cluster: operator, real backend, stand-in kubelet.

Shared by the tests (tests/e2e/test_autoscaling.py) and the benchmark (bench/burst.py): a
scenario sets up a Secret, a Queue and a WorkerPool running ``tests.e2e.sample_app``, pushes
work, and samples queue depth and replicas over time while the pool wakes, scales and drains.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.app import App
from tests.e2e import sample_app
from tests.k8s.conftest import apply, backend_objects, eventually, replicas
from tests.servers.kubernetes import KubernetesCluster

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def stand_in_kubelet(cluster: KubernetesCluster, namespace: str, workdir: Path) -> Iterator[Path]:
    """Run tests/e2e/kubelet.py for ``namespace``; yields the path of its record."""
    record = workdir / "kubelet.jsonl"
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    with (workdir / "kubelet.log").open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.e2e.kubelet",
                "--namespace",
                namespace,
                "--record",
                str(record),
                "--workdir",
                str(workdir / "pods"),
            ],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        yield record
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def kubelet_records(record: Path) -> list[dict[str, Any]]:
    if not record.exists():
        return []
    return [json.loads(line) for line in record.read_text().splitlines() if line.strip()]


def pool_objects(name: str, url: str, log: Path, **pool: Any) -> list[dict[str, Any]]:
    """Secret, Queue (backend queue ``e2e``) and a WorkerPool of sample_app workers."""
    spec: dict[str, Any] = {
        "image": "shoal-e2e:dev",
        "app": "tests.e2e.sample_app:app",
        "concurrency": 10,
        "shutdownTimeoutSeconds": 10,
        "autoscaling": {
            "minReplicas": 0,
            "maxReplicas": 4,
            "scaleDownStabilizationSeconds": 5,
            "idleCooldownSeconds": 5,
        },
        "template": {
            "env": [
                {"name": "SHOAL_TEST_LOG", "value": str(log)},
                {"name": "SHOAL_POLL_INTERVAL", "value": "0.5"},
            ]
        },
    }
    return backend_objects(name, url, pool={**spec, **pool}, queue_name="e2e")


def push_work(url: str, count: int, seconds: float) -> list[str]:
    async def run() -> list[str]:
        app = App(url)
        app.tasks = sample_app.app.tasks
        ids: list[str] = []
        async with app:
            await app.backend.setup()
            batch = sample_app.work.configure()
            for offset in range(0, count, 1000):
                size = min(1000, count - offset)
                ids += await app.push_many([batch.prepare(seconds=seconds) for _ in range(size)])
        return ids

    return asyncio.run(run())


def executions(log: Path) -> tuple[collections.Counter[str], collections.Counter[str], float]:
    """How often each task started and ended, and when the first one started."""
    starts: collections.Counter[str] = collections.Counter()
    ends: collections.Counter[str] = collections.Counter()
    first = float("inf")
    if log.exists():
        for line in log.read_text().splitlines():
            event, task_id, _, _, when = line.split()
            (starts if event == "start" else ends)[task_id] += 1
            if event == "start":
                first = min(first, float(when))
    return starts, ends, first


@dataclass
class Sample:
    at: float
    depth: int
    desired: int
    replicas: int
    ready: int


@dataclass
class Timeline:
    pushed_at: float
    samples: list[Sample] = field(default_factory=list)

    def sample(self, cluster: KubernetesCluster, namespace: str, pool: str) -> Sample:
        found = cluster.kubectl_json("get", "workerpool", pool, "-n", namespace)
        status = found.get("status") or {}
        deployment = cluster.kubectl_json("get", "deployment", f"{pool}-workers", "-n", namespace)
        sample = Sample(
            at=time.time() - self.pushed_at,
            depth=int(status.get("depth") or 0),
            desired=int(status.get("desiredReplicas") or 0),
            replicas=int(deployment["spec"].get("replicas") or 0),
            ready=int((deployment.get("status") or {}).get("readyReplicas") or 0),
        )
        self.samples.append(sample)
        return sample


@dataclass
class BurstReport:
    tasks: int
    first_start_seconds: float
    drain_seconds: float
    zero_again_seconds: float
    peak_replicas: int
    duplicates: int
    tasks_per_second_per_replica: float
    timeline: Timeline


def run_burst(
    cluster: KubernetesCluster,
    namespace: str,
    url: str,
    workdir: Path,
    *,
    tasks: int = 10_000,
    seconds: float = 0.05,
    timeout: float = 300,
) -> BurstReport:
    """Push ``tasks`` into a pool at zero and follow it until it is back at zero."""
    log = workdir / "executions.log"
    apply(cluster, namespace, *pool_objects("burst", url, log))
    eventually(lambda: replicas(cluster, namespace, "burst") == 0, 60, "the pool at zero")
    pushed_at = time.time()
    ids = push_work(url, tasks, seconds)
    timeline = Timeline(pushed_at)
    deadline = time.monotonic() + timeout
    drained_at = None
    while True:
        sample = timeline.sample(cluster, namespace, "burst")
        _, ends, _ = executions(log)
        if drained_at is None and len(ends) >= tasks:
            drained_at = time.time()
        if drained_at is not None and sample.replicas == 0:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"not back at zero in {timeout}s: {len(ends)} of {tasks} done")
        time.sleep(0.5)
    at_zero = time.time()
    # The last pods drain after the Deployment says zero: wait for them to be gone.
    eventually(
        lambda: (
            not cluster.kubectl_json("get", "pods", "-n", namespace, "-l", "shoal.dev/pool=burst")[
                "items"
            ]
        ),
        60,
        "no pods",
    )
    starts, ends, first = executions(log)
    assert set(ends) == set(ids), f"{len(set(ids) - set(ends))} tasks never finished"
    peak = max(s.replicas for s in timeline.samples)
    drain = drained_at - pushed_at
    # Replica-seconds until drained: each sample's replicas held until the next sample.
    samples = [s for s in timeline.samples if s.at <= drain]
    busy = sum(a.replicas * (b.at - a.at) for a, b in itertools.pairwise(samples)) or 1.0
    return BurstReport(
        tasks=tasks,
        first_start_seconds=round(first - pushed_at, 3),
        drain_seconds=round(drain, 2),
        zero_again_seconds=round(at_zero - pushed_at, 2),
        peak_replicas=peak,
        duplicates=sum(count - 1 for count in starts.values() if count > 1),
        tasks_per_second_per_replica=round(tasks / busy, 1),
        timeline=timeline,
    )
