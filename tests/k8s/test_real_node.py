"""A worker pod for real: the operator renders it, the kubelet runs it on containerd and runc.

The ``real_cluster`` fixture (``tests/servers/kubernetes.py``) is a control plane with a real
node on this machine and shoal's images, built from the Dockerfiles, imported into its
containerd. Here the operator (a process, as in the other k8s tests) scales the example
image's WorkerPool from a real Redis's depth; the pod runs ``shoal worker tasks:app``, passes
its exec probes, runs the tasks, and when the queue is empty the kubelet's SIGTERM drains it.
The Redis listens on the pod bridge's gateway, which pods reach and nothing off this machine
does; its password travels in the pool's Secret, as a user's would.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.backends import open_backend
from shoal.core.models import TaskStatus
from tests.k8s.conftest import (
    ROOT,
    Operator,
    apply,
    backend_objects,
    enqueue_example,
    eventually,
    replicas,
)
from tests.servers.kubernetes import KubernetesCluster
from tests.servers.node import GATEWAY, POD_SUBNET
from tests.servers.redis import RedisServer

THUMBNAILS = 4
"""Two-second tasks the example's main pushes (and one checksum)."""


@pytest.fixture
def pod_redis(real_cluster: KubernetesCluster, tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis the pods reach: on the bridge's gateway when the node is ours."""
    host = GATEWAY if real_cluster.node is not None else "127.0.0.1"
    with RedisServer(tmp_path / "redis", host=host, password=secrets.token_hex(12)) as server:
        yield server


@pytest.fixture
def namespace(real_cluster: KubernetesCluster) -> Iterator[str]:
    name = f"shoal-node-{uuid.uuid4().hex[:10]}"
    real_cluster.kubectl("create", "namespace", name)
    yield name
    real_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


def done(url: str) -> int:
    async def read() -> int:
        async with open_backend(url) as backend:
            return len(await backend.list_tasks(statuses=[TaskStatus.DONE]))

    return asyncio.run(read())


def pods(cluster: KubernetesCluster, namespace: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = cluster.kubectl_json("get", "pods", "-n", namespace)["items"]
    return found


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


@pytest.mark.timeout(420)
def test_a_worker_pod_runs_the_tasks_on_a_real_node_and_drains_on_scale_down(
    real_cluster: KubernetesCluster, namespace: str, pod_redis: RedisServer, tmp_path: Path
) -> None:
    cluster = real_cluster
    cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    for crd in ("queues.shoal.dev", "workerpools.shoal.dev"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    url = pod_redis.url(prefix=f"node-{uuid.uuid4().hex[:8]}")
    enqueue_example(url, THUMBNAILS)
    operator = Operator(cluster, tmp_path)
    try:
        # At most two pods: each runs a worker and an exec probe's Python every 5 s, on a
        # machine of two shared cores. With up to five, one run saw a draining worker time
        # out connecting to Redis until its grace period ended in SIGKILL.
        autoscaling = {"minReplicas": 0, "maxReplicas": 2, "idleCooldownSeconds": 3}
        pool = {"autoscaling": {**autoscaling, "scaleDownStabilizationSeconds": 2}}
        apply(cluster, namespace, *backend_objects("thumbnails", url, pool=pool))
        eventually(lambda: (replicas(cluster, namespace, "thumbnails") or 0) > 0, 60, "scale-up")
        [pod, *_] = eventually(
            lambda: [p for p in pods(cluster, namespace) if ready(p)] or None,
            120,
            "a Ready worker pod (the kubelet's readiness probe passed)",
        )
        if cluster.node is not None:  # ours, not SHOAL_TEST_KUBECONFIG's cluster
            assert pod["spec"]["nodeName"] == cluster.node.name
            assert ipaddress.ip_address(pod["status"]["podIP"]) in ipaddress.ip_network(POD_SUBNET)
        [status] = pod["status"]["containerStatuses"]
        assert status["image"].endswith("shoal-example:dev") and status["restartCount"] == 0
        eventually(lambda: done(url) == THUMBNAILS + 1, 120, "every task done by the pod")
        name = pod["metadata"]["name"]
        logs = cluster.kubectl("logs", "-n", namespace, name).stdout
        assert '"message"' in logs and "make_thumbnail" in logs, logs[-2000:]
        # Empty and idle: the operator scales to zero, the kubelet sends SIGTERM, the worker
        # drains and exits well inside its grace period (35 s): no SIGKILL.
        eventually(lambda: replicas(cluster, namespace, "thumbnails") == 0, 90, "scale to zero")
        eventually(lambda: not pods(cluster, namespace), 60, "the pod gone")
        events = cluster.kubectl_json("get", "events", "-n", namespace)["items"]
        seen = [f"{e['reason']} x{e.get('count', 1)}: {e.get('message')}" for e in events]
        print("\n[real node] pod events:\n  " + "\n  ".join(seen))
        killing = [e.get("message") or "" for e in events if e.get("reason") == "Killing"]
        assert killing, "the kubelet never stopped the container"
        # A slow exec probe may be counted as failed (the machine is shared): the liveness
        # probe must never have killed the worker, and nothing may have crashed.
        assert not [m for m in killing if "liveness" in m], killing
        # The operator's WorkerCrashing: a worker exited non-zero (SIGKILL after the grace).
        bad = ("BackOff", "Failed", "WorkerCrashing")
        assert not [s for s in seen if s.startswith(bad)], seen
    finally:
        operator.stop()
