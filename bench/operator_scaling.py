"""The operator on a real kube-apiserver and a real PostgreSQL: how fast, and at what cost.

Prints JSON lines:
- ``operator_wake_from_zero``: p50/p95 over ``--runs`` runs of the time from a committed push
  into an idle queue to its Deployment's ``spec.replicas`` > 0 (KEDA's default: up to 30 s);
- ``operator_burst_to_target``: p50/p95 from a burst (pushed in one batch) to the full target
  replica count, reached in one step;
- ``operator_cost``: with 1, 100 and 1,000 WorkerPools on one backend, idle, the operator's
  CPU (cores) and RSS, its Kubernetes API requests per second (as it counts them, and the
  apiserver's total over every client for reference), and database transactions per stats
  interval on the backend's database.

Usage: python bench/operator_scaling.py [--runs 20] [--pools 1,100,1000] [--window 30]
(``--pools ""``: the latencies only)
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psutil

from bench.common import emit
from tests.k8s.conftest import Operator, backend_objects, migrate, push
from tests.servers.kubernetes import KubernetesCluster, find_bin_dir
from tests.servers.postgres import PostgresServer

ROOT = Path(__file__).resolve().parents[1]


def apply(cluster: KubernetesCluster, namespace: str, objects: list[dict[str, Any]]) -> None:
    manifest = json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    cluster.kubectl(
        "apply", "--server-side", "-n", namespace, "-f", "-", input=manifest, timeout=600
    )


def replicas_of(cluster: KubernetesCluster, namespace: str) -> dict[str, int]:
    listed = cluster.kubectl_json("get", "deployments", "-n", namespace)
    return {d["metadata"]["name"]: d["spec"].get("replicas", 0) for d in listed["items"]}


def wait(condition: Any, timeout: float, step: float = 0.01) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise TimeoutError("the operator did not act in time")
        time.sleep(step)
    return time.monotonic() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


class ReplicaWatch:
    """``kubectl get deployments --watch``: when each Deployment's ``spec.replicas`` changed,
    as the API server streamed it. A kubectl started per poll costs 0.1-0.3 s on two busy
    cores, which was part of every figure and of its spread; the stream's arrival is not."""

    def __init__(self, cluster: KubernetesCluster, namespace: str) -> None:
        argv = [str(cluster.bin_dir / "kubectl"), f"--kubeconfig={cluster.kubeconfig}"]
        argv += ["get", "deployments", "-n", namespace, "--watch", "-o"]
        argv += ['jsonpath={.metadata.name} {.spec.replicas}{"\\n"}']
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        self.changes: list[tuple[float, str, int]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            name, _, count = line.strip().partition(" ")
            with self._lock:
                self.changes.append((time.monotonic(), name, int(count or 0)))

    def until(self, name: str, check: Any, timeout: float = 30.0) -> float:
        """When ``name`` first changed so that it ``check``s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                for moment, changed, count in self.changes:
                    if changed == name and check(count):
                        return moment
            time.sleep(0.005)
        raise TimeoutError(f"{name}: the operator did not act in time")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def latency_runs(cluster: KubernetesCluster, url: str, runs: int) -> None:
    cluster.kubectl("create", "namespace", "wake")
    objects = []
    for number in range(runs):
        objects += backend_objects(f"wake{number}", url, stats_interval=30)
    apply(cluster, "wake", objects)
    wait(lambda: len(replicas_of(cluster, "wake")) == runs, 120, 0.5)
    time.sleep(3)  # listeners settle
    wake = []
    watch = ReplicaWatch(cluster, "wake")
    time.sleep(1)  # the watch's initial listing
    for number in range(runs):
        push(url, f"wake{number}", 1)  # returns once committed
        committed = time.monotonic()
        scaled = watch.until(f"wake{number}-workers", lambda n: n > 0)
        wake.append(max(0.0, scaled - committed))
        # The next push lands anywhere in the operator's cycle after that wake-up, within
        # the 0.2 s it paces measurements by and beyond.
        time.sleep(random.uniform(0, 0.5))
    watch.stop()
    emit(
        "operator_wake_from_zero",
        runs=runs,
        p50_seconds=round(percentile(wake, 0.5), 3),
        p95_seconds=round(percentile(wake, 0.95), 3),
        keda_default_seconds=30,
    )

    cluster.kubectl("create", "namespace", "burst")
    pool = {"autoscaling": {"minReplicas": 0, "maxReplicas": 10}, "concurrency": 10}
    objects = []
    for number in range(runs):
        objects += backend_objects(f"burst{number}", url, pool=pool, stats_interval=30)
    apply(cluster, "burst", objects)
    wait(lambda: len(replicas_of(cluster, "burst")) == runs, 120, 0.5)
    time.sleep(3)
    burst = []
    watch = ReplicaWatch(cluster, "burst")
    time.sleep(1)
    for number in range(runs):
        push(url, f"burst{number}", 100)
        committed = time.monotonic()
        scaled = watch.until(f"burst{number}-workers", lambda n: n == 10)
        burst.append(max(0.0, scaled - committed))
    watch.stop()
    emit(
        "operator_burst_to_target",
        runs=runs,
        target=10,
        p50_seconds=round(percentile(burst, 0.5), 3),
        p95_seconds=round(percentile(burst, 0.95), 3),
    )


def api_requests(cluster: KubernetesCluster) -> float:
    total = 0.0
    for line in cluster.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if line.startswith("apiserver_request_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def operator_requests(operator: Operator) -> float:
    """The API calls the operator counted itself (its watches are long-lived streams)."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in operator.metrics().splitlines()
        if line.startswith("shoal_operator_api_requests_total{")
    )


def cost(
    cluster: KubernetesCluster,
    server: PostgresServer,
    url: str,
    operator: Operator,
    pools: int,
    window: float,
) -> None:
    namespace = f"cost{pools}"
    cluster.kubectl("create", "namespace", namespace)
    objects = []
    for number in range(pools):
        objects += backend_objects(f"p{number}", url, stats_interval=5)
    apply(cluster, namespace, objects)
    wait(lambda: len(replicas_of(cluster, namespace)) >= pools, 900, 2)
    time.sleep(10)  # let the creation settle
    process = psutil.Process(operator.process.pid)
    cpu_before, api_before = process.cpu_times(), api_requests(cluster)
    own_before = operator_requests(operator)
    commits_before = _commits(server)
    started = time.monotonic()
    time.sleep(window)
    elapsed = time.monotonic() - started
    cpu_after, api_after = process.cpu_times(), api_requests(cluster)
    own = operator_requests(operator) - own_before
    commits = _commits(server) - commits_before
    used = (cpu_after.user + cpu_after.system) - (cpu_before.user + cpu_before.system)
    emit(
        "operator_cost",
        pools=pools,
        window_seconds=round(elapsed, 1),
        cpu_cores=round(used / elapsed, 3),
        rss_mb=round(process.memory_info().rss / 2**20, 1),
        operator_api_requests_per_second=round(own / elapsed, 2),
        # Every client's: kube-controller-manager, the apiserver itself, and this script (2).
        apiserver_requests_per_second_all_clients=round((api_after - api_before - 2) / elapsed, 2),
        db_transactions_per_interval=round(commits / (elapsed / 5), 2),
    )
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")


def _commits(server: PostgresServer) -> int:
    out = server.psql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'bench'")
    return int(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pools", default="1,100,1000")
    parser.add_argument("--window", type=float, default=30.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shoal-bench-") as folder:
        server = PostgresServer()
        server.start()
        cluster = KubernetesCluster(Path(folder) / "k8s", find_bin_dir())
        try:
            cluster.start()
            cluster.kubectl("apply", "-f", str(ROOT / "crds"))
            url = server.url(server.create_database("bench"))
            migrate(url)
            operator = Operator(cluster, Path(folder))
            try:
                latency_runs(cluster, url, arguments.runs)
                for pools in [int(p) for p in arguments.pools.split(",") if p]:
                    cost(cluster, server, url, operator, pools, arguments.window)
            finally:
                operator.stop()
        finally:
            cluster.stop()
            server.stop()


if __name__ == "__main__":
    main()
