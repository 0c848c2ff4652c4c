"""The README's Kubernetes path, end to end on a real node, then the operator's pod killed.

``helm install`` of the chart runs the operator as two real pods (one leads through its Lease)
under the chart's ServiceAccount, from the operator image built here; ``kubectl apply -f
examples/`` runs the example's Redis in a pod and its Queue and WorkerPool; ``kubectl run``
enqueues; the pool scales 0 -> N -> 0 with real worker pods; ``kubectl get workerpools`` shows
its columns. Then the leading operator's process is SIGKILLed on the node and a burst is
pushed into the idle pool: the standby pod takes over and wakes the pool.

Two substitutions, both because nothing can be pulled here and no cluster DNS runs: the
Redis image is one built here (``tests/servers/redis-image``) and the Secret's URL names the
Redis Service's ClusterIP instead of its DNS name. Figures are printed as JSON lines.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shoal.backends import open_backend
from shoal.core.errors import ShoalError
from shoal.core.models import TaskStatus
from tests.k8s.conftest import ROOT, enqueue_example, eventually, replicas
from tests.servers.docker import Images
from tests.servers.kubernetes import SERVICE_CIDR, KubernetesCluster

TASKS = 30
"""Two-second thumbnails (and one checksum): 4 pods of the example's 10 per replica."""
FAILOVER_CEILING = 15.0


@pytest.fixture
def namespaces(real_cluster: KubernetesCluster) -> Iterator[tuple[str, str]]:
    suffix = uuid.uuid4().hex[:8]
    system, example = f"shoal-system-{suffix}", f"shoal-example-{suffix}"
    real_cluster.kubectl("create", "namespace", example)  # helm creates the other
    yield system, example
    real_cluster.helm("uninstall", "shoal", "--namespace", system, check=False)
    for name in (example, system):
        real_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def free_cluster_ip(cluster: KubernetesCluster) -> str:
    used = {
        s["spec"].get("clusterIP")
        for s in cluster.kubectl_json("get", "services", "--all-namespaces")["items"]
    }
    hosts = list(ipaddress.IPv4Network(SERVICE_CIDR).hosts())
    return next(str(ip) for ip in reversed(hosts) if str(ip) not in used)


def examples_for_this_cluster(directory: Path, images: Images, redis_ip: str) -> Path:
    """``examples/`` with the two substitutions (see the module docstring)."""
    directory.mkdir()
    for source in sorted((ROOT / "examples").glob("*.yaml")):
        text = source.read_text()
        text = text.replace("image: redis:7.4-alpine", f"image: {images.redis}")
        text = text.replace(
            "spec:\n  selector: {app.kubernetes.io/name: shoal-redis}",
            f"spec:\n  clusterIP: {redis_ip}\n  selector: {{app.kubernetes.io/name: shoal-redis}}",
        )
        text = text.replace("shoal-redis.default.svc.cluster.local", redis_ip)
        (directory / source.name).write_text(text)
    assert redis_ip in (directory / "00-redis.yaml").read_text()
    assert redis_ip in (directory / "01-secret.yaml").read_text()
    return directory


def pods(cluster: KubernetesCluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    found = cluster.kubectl_json("get", "pods", "-n", namespace, "-l", selector)
    items: list[dict[str, Any]] = found["items"]
    return items


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    deleting = pod["metadata"].get("deletionTimestamp") is not None
    return not deleting and any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def counts(url: str) -> dict[str, int]:
    async def read() -> dict[str, int]:
        try:
            async with open_backend(url) as backend:
                tasks = await backend.list_tasks(limit=1000)
        except ShoalError:
            return {}  # not migrated yet: the example's main does that
        found: dict[str, int] = {}
        for task in tasks:
            found[task.status.value] = found.get(task.status.value, 0) + 1
        return found

    return asyncio.run(read())


def lease_holder(cluster: KubernetesCluster, namespace: str) -> str | None:
    found = cluster.kubectl(
        "get", "lease", "shoal-operator", "-n", namespace, "-o", "json", check=False
    )
    if found.returncode != 0:
        return None
    return (json.loads(found.stdout).get("spec") or {}).get("holderIdentity")


def operator_pid(cluster: KubernetesCluster, pod: dict[str, Any]) -> int:
    """The operator's process on this node, from its container's id (crictl)."""
    assert cluster.node is not None
    [status] = pod["status"]["containerStatuses"]
    container = status["containerID"].removeprefix("containerd://")
    inspected = json.loads(cluster.node.crictl("inspect", container).stdout)
    return int(inspected["info"]["pid"])


@pytest.mark.timeout(900)
def test_the_readme_path_on_a_real_node_and_the_operator_pod_killed(
    real_cluster: KubernetesCluster,
    shoal_images: Images,
    namespaces: tuple[str, str],
    tmp_path: Path,
) -> None:
    cluster, (system, example) = real_cluster, namespaces
    if cluster.node is None:
        pytest.skip("needs a node of its own: the leader's process is killed on it")
    # helm install, as the README has it (the images are there: nothing is pulled).
    installed = cluster.helm(
        "install", "shoal", str(ROOT / "charts" / "shoal"), "--namespace", system,
        "--create-namespace", "--set", "image.tag=dev", timeout=180,
    )  # fmt: skip
    assert "STATUS: deployed" in installed.stdout
    selector = "app.kubernetes.io/name=shoal,app.kubernetes.io/component=operator"
    operators = eventually(
        lambda: (
            len(ready_pods := [p for p in pods(cluster, system, selector) if ready(p)]) == 2
            and ready_pods
        ),
        180,
        "two Ready operator pods (one leading, one standing by)",
    )
    leader = eventually(lambda: lease_holder(cluster, system), 30, "a leader")
    [leading] = [p for p in operators if leader.startswith(p["metadata"]["name"] + "_")]
    assert leading["spec"]["serviceAccountName"] == "shoal"
    assert leading["spec"]["nodeName"] == cluster.node.name

    # kubectl apply -f examples/
    redis_ip = free_cluster_ip(cluster)
    url = f"redis://{redis_ip}:6379/0"
    manifests = examples_for_this_cluster(tmp_path / "examples", shoal_images, redis_ip)
    cluster.kubectl("apply", "-n", example, "-f", str(manifests))
    cluster.kubectl(
        "rollout", "status", "deployment/shoal-redis", "-n", example, "--timeout=180s",
        timeout=200,
    )  # fmt: skip
    eventually(lambda: replicas(cluster, example, "thumbnails") == 0 or None, 60, "a pool at 0")

    # Enqueue with kubectl run, and time the pool's wake-up on real pods from the moment
    # the tasks are in Redis (kubectl returns later: it waits for the pod's deletion).
    enqueue = threading.Thread(
        target=cluster.kubectl,
        args=(
            "run", "enqueue", "-n", example, "--rm", "-i", "--restart=Never",
            f"--image={shoal_images.example}", f"--env=SHOAL_BACKEND_URL={url}",
            "--command", "--", "python", "tasks.py", str(TASKS),
        ),
        kwargs={"timeout": 240},
    )  # fmt: skip
    enqueue.start()
    eventually(lambda: sum(counts(url).values()) == TASKS + 1, 240, "the tasks enqueued")
    pushed = time.monotonic()
    eventually(lambda: (replicas(cluster, example, "thumbnails") or 0) > 0, 30, "a scale-up")
    scaled = time.monotonic() - pushed
    workers = "shoal.dev/pool=thumbnails"
    # One look at everything per round (about 0.3 s of kubectl and Redis): a worker claims
    # before its readiness probe first passes, so the two are timed side by side.
    first: dict[str, float] = {}
    peak = 0

    def observe() -> bool:
        nonlocal peak
        moment = time.monotonic() - pushed
        found = counts(url)
        if sum(n for status, n in found.items() if status != "queued"):
            first.setdefault("task", moment)
        if any(ready(p) for p in pods(cluster, example, workers)):
            first.setdefault("ready", moment)
        peak = max(peak, replicas(cluster, example, "thumbnails") or 0)
        return found.get(TaskStatus.DONE.value, 0) == TASKS + 1 and "ready" in first

    eventually(observe, 240, "every task done by the pods")
    enqueue.join(60)
    first_ready, first_task = first["ready"], first["task"]
    drained = time.monotonic() - pushed

    def table() -> list[list[str]]:
        return [
            line.split()
            for line in cluster.kubectl("get", "workerpools", "-n", example).stdout.splitlines()
        ]

    header, row = eventually(lambda: (t := table())[1][2] == "0" and t, 30, "depth 0 shown")
    assert header == ["NAME", "QUEUES", "DEPTH", "DESIRED", "READY", "AGE"]
    assert row[:2] == ["thumbnails", "thumbnails"]  # the status follows its 5 s stats
    # The example's windows: 30 s of stabilisation, 60 s of idle cooldown, then zero.
    eventually(lambda: replicas(cluster, example, "thumbnails") == 0, 240, "scale to zero")
    eventually(lambda: not pods(cluster, example, workers), 120, "the worker pods gone")
    print(
        json.dumps(
            {
                "bench": "readme_path_real_node",
                "tasks": TASKS + 1,
                "push_to_scaled_s": round(scaled, 2),
                "push_to_first_pod_ready_s": round(first_ready, 2),
                "push_to_first_task_started_s": round(first_task, 2),
                "push_to_all_done_s": round(drained, 2),
                "peak_replicas": peak,
            }
        )
    )

    # The leading operator's process SIGKILLed on the node; a burst into the idle pool,
    # pushed from here (the example's main, as `kubectl run` ran it) to time it closely.
    os.kill(operator_pid(cluster, leading), signal.SIGKILL)
    killed = time.monotonic()
    enqueue_example(url, TASKS)
    successor = eventually(
        lambda: (h := lease_holder(cluster, system)) != leader and h, 60, "a new leader"
    )
    lease_taken = time.monotonic() - killed
    eventually(lambda: (replicas(cluster, example, "thumbnails") or 0) > 0, 60, "a wake-up")
    failover = time.monotonic() - killed
    eventually(
        lambda: counts(url).get(TaskStatus.DONE.value, 0) == 2 * (TASKS + 1), 240, "the burst"
    )
    print(
        json.dumps(
            {
                "bench": "operator_pod_failover",
                "kill_to_lease_taken_s": round(lease_taken, 2),
                "kill_to_pool_woken_s": round(failover, 2),
            }
        )
    )
    assert failover <= FAILOVER_CEILING, f"{failover:.1f}s from the kill to the pool woken"
    events = cluster.kubectl_json("get", "events", "-n", example)["items"]
    scaled_by = [e["reportingInstance"] for e in events if e["reason"].startswith("Scaled")]
    assert set(scaled_by) <= {leader, successor}, scaled_by
    assert successor in scaled_by
    counted = counts(url)
    assert counted == {TaskStatus.DONE.value: 2 * (TASKS + 1)}, counted
