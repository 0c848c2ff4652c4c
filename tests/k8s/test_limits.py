"""The operator on a real kube-apiserver scales a rate-limited queue for what its limit lets
run, from real PostgreSQL and Redis stats (``QueueStats.held_back``).

Matrix: backend (postgres, redis). As in ``test_operator.py`` there is no kubelet: the
Deployment's replicas are what the operator decided.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

import pytest

from shoal.backends import open_backend
from shoal.core.ids import new_id
from shoal.core.limits import Rate, TaskLimits
from shoal.core.models import NewTask, utcnow
from tests.k8s.conftest import Operator, apply, backend_objects, eventually, migrate, replicas


def push_rate_limited(url: str, queue: str, count: int, rate: Rate) -> None:
    limits = TaskLimits("queue", rate)

    async def run() -> None:
        async with open_backend(url) as backend:
            plain = NewTask(new_id(), queue, "tasks.work", b"{}", utcnow(), 3)
            await backend.push(
                [dataclasses.replace(plain, id=new_id(), limits=limits) for _ in range(count)]
            )

    asyncio.run(run())


@pytest.mark.parametrize("backend", ["postgres", "redis"])
def test_a_rate_limited_queue_gets_the_workers_its_limit_lets_run(
    operator: Operator, kube_namespace: str, backend: str, request: pytest.FixtureRequest
) -> None:
    url: str = request.getfixturevalue(f"{backend}_url")
    migrate(url)
    cluster = operator.cluster
    # Two pools of concurrency 2, at most 5 replicas each; 60 tasks in each queue.
    apply(cluster, kube_namespace, *backend_objects("limited", url))
    apply(cluster, kube_namespace, *backend_objects("free", url))
    for pool in ("limited", "free"):
        eventually(lambda p=pool: replicas(cluster, kube_namespace, p) == 0 or None, what=pool)
    # Two tokens, the next in half an hour: two tasks can run, 58 are held back.
    push_rate_limited(url, "limited", 60, Rate(40, 3600.0))
    push_rate_limited(url, "free", 60, Rate(100_000, 1.0))  # a limit that holds nothing back
    eventually(lambda: replicas(cluster, kube_namespace, "free") == 5, 15, "5 replicas for 60")
    eventually(lambda: replicas(cluster, kube_namespace, "limited") == 1, 15, "1 replica")
    # Stats come every second: five more decisions never take the limited pool past one.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert replicas(cluster, kube_namespace, "limited") == 1
        time.sleep(0.2)
    status = cluster.kubectl_json("get", "workerpool", "limited", "-n", kube_namespace)["status"]
    assert status["depth"] == 60
    assert "60 ready (58 held back by limits)" in status["lastScaleReason"]
