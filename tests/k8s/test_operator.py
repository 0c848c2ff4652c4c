"""The operator on a real kube-apiserver, scaling from real PostgreSQL and Redis queues.

There is no kubelet: Deployments get ReplicaSets (kube-controller-manager) but no running
pods, so "workers" are played by the test claiming and acking tasks itself.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from shoal.backends import open_backend
from shoal.core.ids import new_id
from shoal.core.models import NewTask, utcnow
from tests.k8s.conftest import (
    Operator,
    apply,
    backend_objects,
    eventually,
    finish_all,
    migrate,
    push,
    replicas,
)
from tests.servers.kubernetes import CommandFailed, KubernetesCluster
from tests.servers.ports import free_port
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer
from tests.servers.tls import Certificates


def pool_status(cluster: KubernetesCluster, namespace: str, name: str) -> dict[str, Any]:
    found = cluster.kubectl_json("get", "workerpool", name, "-n", namespace)
    status: dict[str, Any] = found.get("status") or {}
    return status


def condition(status: dict[str, Any], type_: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


def events(cluster: KubernetesCluster, namespace: str) -> list[tuple[str, str, str]]:
    listed = cluster.kubectl_json("get", "events", "-n", namespace)
    return [(e["type"], e["reason"], e["message"]) for e in listed["items"]]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"autoscaling": {"minReplicas": 4, "maxReplicas": 2}}, "minReplicas must not exceed"),
        ({"concurrency": -1}, "spec.concurrency"),
        ({"prefetch": -5}, "spec.prefetch"),
        (
            {"shutdownTimeoutSeconds": 60, "terminationGracePeriodSeconds": 60},
            "terminationGracePeriodSeconds must exceed shutdownTimeoutSeconds",
        ),
        ({"queues": None}, 'missing required field "queues"'),
    ],
)
def test_malformed_pools_are_rejected_with_readable_messages(
    crds: KubernetesCluster, kube_namespace: str, spec: dict[str, Any], message: str
) -> None:
    body = {"queues": [{"name": "q"}], "image": "x", "app": "tasks:app", **spec}
    body = {key: value for key, value in body.items() if value is not None}
    pool = {
        "apiVersion": "shoal.dev/v1alpha1",
        "kind": "WorkerPool",
        "metadata": {"name": "bad"},
        "spec": body,
    }
    with pytest.raises(CommandFailed) as caught:
        apply(crds, kube_namespace, pool)
    assert message in str(caught.value)


def test_a_pool_gets_its_deployment_with_the_secret_and_grace(
    operator: Operator, kube_namespace: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    cluster = operator.cluster
    apply(cluster, kube_namespace, *backend_objects("emails", postgres_url))
    deployment = eventually(
        lambda: (
            cluster.kubectl(
                "get",
                "deployment",
                "emails-workers",
                "-n",
                kube_namespace,
                "-o",
                "json",
                check=False,
            ).stdout
            or None
        ),
        what="the Deployment",
    )
    assert '"terminationGracePeriodSeconds": 35' in deployment  # 20 s drain + 15 s
    assert '"secretKeyRef": {\n' in deployment or '"secretKeyRef":' in deployment
    assert postgres_url.split("@")[-1] not in deployment  # the URL itself is never copied
    assert '"tasks:app"' in deployment and '"--queues"' in deployment
    ready = eventually(
        lambda: condition(pool_status(cluster, kube_namespace, "emails"), "Ready"),
        what="the Ready condition",
    )
    assert ready["status"] == "True"


def scale_up_and_down(operator: Operator, namespace: str, url: str) -> None:
    cluster = operator.cluster
    apply(cluster, namespace, *backend_objects("work", url))
    eventually(lambda: replicas(cluster, namespace, "work") == 0 or None, what="a pool at 0")
    push(url, "work", 7)
    eventually(lambda: replicas(cluster, namespace, "work") == 4, 10, "4 replicas for 7 tasks")
    # The status follows the scale (it is written right after the Deployment is patched).
    status = eventually(
        lambda: (s := pool_status(cluster, namespace, "work")).get("desiredReplicas") == 4 and s,
        5,
        "the status",
    )
    assert status["depth"] == 7
    assert "scale up 0 → 4" in status["lastScaleReason"]
    finish_all(url, "work")
    # The 2 s window, then one replica through the 3 s idle cooldown, then zero.
    eventually(lambda: replicas(cluster, namespace, "work") == 1, 15, "scale down to 1")
    eventually(lambda: replicas(cluster, namespace, "work") == 0, 15, "scale to zero")
    reasons = [reason for _, reason, _ in events(cluster, namespace)]
    assert "ScaledUp" in reasons and "ScaledDown" in reasons


def test_postgres_depth_scales_the_pool_up_down_and_to_zero(
    operator: Operator, kube_namespace: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    scale_up_and_down(operator, kube_namespace, postgres_url)


def test_redis_depth_scales_the_pool_up_down_and_to_zero(
    operator: Operator, kube_namespace: str, redis_url: str
) -> None:
    scale_up_and_down(operator, kube_namespace, redis_url)


@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_the_first_push_wakes_a_pool_from_zero_within_a_second(
    operator: Operator, kube_namespace: str, backend: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(f"{backend}_url")
    migrate(url)
    cluster = operator.cluster
    # Stats every 60 s: only the wake-up hint can be this fast.
    apply(cluster, kube_namespace, *backend_objects("idle", url, stats_interval=60))
    eventually(lambda: replicas(cluster, kube_namespace, "idle") == 0 or None, what="a pool at 0")
    time.sleep(1.0)  # let the listener settle on the queue
    started = time.monotonic()
    push(url, "idle", 1)
    eventually(lambda: (replicas(cluster, kube_namespace, "idle") or 0) > 0, 5, "a wake-up")
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_a_push_right_after_another_pools_wake_up_is_not_slept_through(
    operator: Operator, kube_namespace: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """Two idle pools on one backend, pushed 50 ms apart: the second push lands while the
    operator handles the first wake-up. Its wake-up must be heard, not found by the next
    look at the store a poll interval (1 s) later, as it was while the listener paused
    after each wake-up."""
    url: str = request.getfixturevalue(f"{backend}_url")
    migrate(url)
    cluster = operator.cluster
    for name in ("first", "second"):
        apply(cluster, kube_namespace, *backend_objects(name, url, stats_interval=60))
    for name in ("first", "second"):
        eventually(lambda n=name: replicas(cluster, kube_namespace, n) == 0 or None, what=name)
    time.sleep(1.0)  # let the listener settle on the queues

    async def two_pushes() -> float:
        async with open_backend(url) as backend:
            task = lambda queue: NewTask(new_id(), queue, "tasks.work", b"{}", utcnow(), 3)  # noqa: E731
            await backend.push([task("first")])
            await asyncio.sleep(0.05)
            await backend.push([task("second")])
            return time.monotonic()

    pushed = asyncio.run(two_pushes())
    eventually(lambda: (replicas(cluster, kube_namespace, "second") or 0) > 0, 5, "a wake-up")
    woken = time.monotonic() - pushed
    assert (replicas(cluster, kube_namespace, "first") or 0) > 0
    # Slept through, it took at least the listener's pause (0.2 s) and a poll (1 s).
    assert woken < 1.0, f"the second pool woke {woken:.2f}s after its push"


def test_a_backend_that_comes_up_late_wakes_its_pool_at_once(
    operator: Operator, kube_namespace: str, tmp_path: Path
) -> None:
    """The Queue applied before its Redis is up (as examples/ applies both at once): the
    wake-up listener backs off meanwhile, and must listen again as soon as the backend
    answers, not at the end of a back-off grown to many seconds."""
    cluster = operator.cluster
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    apply(cluster, kube_namespace, *backend_objects("late", url, stats_interval=5))
    eventually(lambda: replicas(cluster, kube_namespace, "late") == 0 or None, what="a pool")
    time.sleep(16)  # the listener's back-off grows: 1, 2, 4, 8, then up to 16 s

    def reachable() -> bool:
        status = cluster.kubectl_json("get", "queue", "late", "-n", kube_namespace).get("status")
        found = condition(status or {}, "Reachable")
        return bool(found and found["status"] == "True")

    with RedisServer(tmp_path / "redis", port=port):
        eventually(reachable, 15, "a measurement reading the backend")
        time.sleep(0.5)  # the listener waits again
        push(url, "late", 1)
        pushed = time.monotonic()
        eventually(lambda: (replicas(cluster, kube_namespace, "late") or 0) > 0, 10, "a wake")
        woken = time.monotonic() - pushed
    # Stats every 5 s: only the listener is this fast.
    assert woken < 1.0, f"the pool woke {woken:.2f}s after the push"


def test_an_unreachable_backend_holds_replicas_and_says_why(
    operator: Operator, kube_namespace: str
) -> None:
    cluster = operator.cluster
    dead = "postgresql://shoal:hunter2@127.0.0.1:9/jobs"
    apply(
        cluster,
        kube_namespace,
        *backend_objects("lost", dead, pool={"autoscaling": {"minReplicas": 2, "maxReplicas": 5}}),
    )
    eventually(lambda: replicas(cluster, kube_namespace, "lost") == 2, what="min replicas")
    scaling = eventually(
        lambda: condition(pool_status(cluster, kube_namespace, "lost"), "ScalingActive"),
        what="the ScalingActive condition",
    )
    assert scaling["status"] == "False" and scaling["reason"] == "BackendUnreachable"
    assert "hunter2" not in scaling["message"] and "Replicas are held" in scaling["message"]
    time.sleep(2)
    assert replicas(cluster, kube_namespace, "lost") == 2
    warnings = [
        m for kind, reason, m in events(cluster, kube_namespace) if reason == "BackendUnreachable"
    ]
    assert warnings and all("hunter2" not in m for m in warnings)


def test_a_missing_secret_is_reported_and_recovered_from(
    operator: Operator, kube_namespace: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    cluster = operator.cluster
    secret, queue, pool = backend_objects("late", postgres_url)
    apply(cluster, kube_namespace, queue, pool)
    missing = eventually(
        lambda: condition(pool_status(cluster, kube_namespace, "late"), "Ready"),
        what="the Ready condition",
    )
    assert missing["status"] == "False" and missing["reason"] == "SecretMissing"
    assert "create it with the backend URL" in missing["message"]
    assert any(reason == "SecretMissing" for _, reason, _ in events(cluster, kube_namespace))
    apply(cluster, kube_namespace, secret)
    eventually(
        lambda: replicas(cluster, kube_namespace, "late") is not None,
        40,
        "the Deployment once the Secret exists",
    )


def test_hand_edits_are_put_back_and_deleting_the_pool_deletes_the_deployment(
    operator: Operator, kube_namespace: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    cluster = operator.cluster
    apply(
        cluster,
        kube_namespace,
        *backend_objects(
            "owned", postgres_url, pool={"autoscaling": {"minReplicas": 1, "maxReplicas": 3}}
        ),
    )
    eventually(lambda: replicas(cluster, kube_namespace, "owned") == 1, what="1 replica")
    cluster.kubectl(
        "patch",
        "deployment",
        "owned-workers",
        "-n",
        kube_namespace,
        "--type=json",
        "-p",
        '[{"op": "replace", "path": "/spec/template/spec/'
        'terminationGracePeriodSeconds", "value": 1}]',
    )
    eventually(
        lambda: (
            cluster.kubectl(
                "get",
                "deployment",
                "owned-workers",
                "-n",
                kube_namespace,
                "-o",
                "jsonpath={.spec.template.spec.terminationGracePeriodSeconds}",
            ).stdout
            == "35"
        ),
        10,
        "the grace period put back",
    )
    cluster.kubectl("delete", "workerpool", "owned", "-n", kube_namespace)
    eventually(
        lambda: replicas(cluster, kube_namespace, "owned") is None,
        30,
        "garbage collection of the Deployment",
    )


def test_kubectl_scale_applies_at_once_and_paused_pools_hold(
    operator: Operator, kube_namespace: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    cluster = operator.cluster
    apply(
        cluster,
        kube_namespace,
        *backend_objects(
            "manual",
            postgres_url,
            pool={
                "autoscaling": {
                    "minReplicas": 0,
                    "maxReplicas": 5,
                    "scaleDownStabilizationSeconds": 2,
                    "idleCooldownSeconds": 3,
                }
            },
        ),
    )
    eventually(lambda: replicas(cluster, kube_namespace, "manual") == 0 or None, what="zero")
    # Paused: the autoscaler leaves the pool alone, kubectl scale holds.
    cluster.kubectl(
        "annotate", "workerpool", "manual", "-n", kube_namespace, "shoal.dev/paused=true"
    )
    cluster.kubectl("scale", "workerpool", "manual", "-n", kube_namespace, "--replicas=3")
    eventually(lambda: replicas(cluster, kube_namespace, "manual") == 3, 15, "kubectl scale")
    eventually(
        lambda: (
            (condition(pool_status(cluster, kube_namespace, "manual"), "ScalingActive") or {}).get(
                "reason"
            )
            == "Paused"
        ),
        what="the Paused condition",
    )
    time.sleep(3)  # several measurements, with nothing to do
    assert replicas(cluster, kube_namespace, "manual") == 3
    status = pool_status(cluster, kube_namespace, "manual")
    assert status["lastScaleReason"].startswith("kubectl scale to 3")
    # Unpaused: the next measurement decides again (nothing queued: back down after the
    # window and the cooldown).
    cluster.kubectl("annotate", "workerpool", "manual", "-n", kube_namespace, "shoal.dev/paused-")
    eventually(
        lambda: replicas(cluster, kube_namespace, "manual") == 0,
        30,
        "the autoscaler taking over again",
    )


def test_the_operator_logs_json_lines_naming_their_objects(operator: Operator) -> None:
    """Its own lines and kopf's go through the workers' formatter: one object per line."""
    lines = [json.loads(line) for line in operator.log.read_text().splitlines() if line]
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line.get("k8s_ref", {}).get("kind") == "WorkerPool" for line in lines)


def test_a_pool_on_a_tls_backend_scales_and_mounts_the_certificates(
    operator: Operator,
    kube_namespace: str,
    tls_postgres: PostgresServer,
    tls_certificates: Certificates,
) -> None:
    """The operator's stats connection takes the URL's TLS options as they are (a CA,
    client certificate and key, verify-full); the workers get the pool's Secret at
    /etc/shoal/tls, where such a URL names its files in a cluster."""
    files = {
        "sslmode": "verify-full",
        "sslrootcert": str(tls_certificates.ca),
        "sslcert": str(tls_certificates.client_cert),
        "sslkey": str(tls_certificates.client_key),
    }
    url = f"{tls_postgres.url(tls_postgres.create_database())}?{urlencode(files)}"
    migrate(url)
    cluster = operator.cluster
    pool = {"tls": {"secretName": "db-certs"}}
    apply(cluster, kube_namespace, *backend_objects("secure", url, pool=pool))
    push(url, "secure", 3)
    eventually(lambda: replicas(cluster, kube_namespace, "secure") == 2, 15, "2 replicas")
    # The status is patched after the replicas: wait for it rather than read it at once.
    eventually(
        lambda: pool_status(cluster, kube_namespace, "secure").get("depth") == 3, 15, "depth 3"
    )
    deployment = cluster.kubectl_json("get", "deployment", "secure-workers", "-n", kube_namespace)
    pod = deployment["spec"]["template"]["spec"]
    assert {"name": "tls", "secret": {"secretName": "db-certs", "defaultMode": 0o444}} in (
        pod["volumes"]
    )
    [container] = pod["containers"]
    assert {"name": "tls", "mountPath": "/etc/shoal/tls", "readOnly": True} in (
        container["volumeMounts"]
    )
