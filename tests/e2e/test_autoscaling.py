"""The whole system under load and faults: operator, real backends, stand-in kubelet.

Matrix: each scenario runs on PostgreSQL and on Redis (the ``url`` fixture). The worker pods
are local processes run by tests/e2e/kubelet.py from the Deployments the operator scales.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.scenarios import (
    executions,
    kubelet_records,
    pool_objects,
    push_work,
    run_burst,
    stand_in_kubelet,
)
from tests.k8s.conftest import Operator, apply, eventually, migrate
from tests.servers.kubernetes import KubernetesCluster


@pytest.fixture(params=["postgres", "redis"])
def url(request: pytest.FixtureRequest) -> str:
    found: str = request.getfixturevalue(f"{request.param}_url")
    migrate(found)
    return found


def pool_condition(
    cluster: KubernetesCluster, namespace: str, pool: str, type_: str
) -> dict[str, Any] | None:
    status = cluster.kubectl_json("get", "workerpool", pool, "-n", namespace).get("status") or {}
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), None)


@pytest.mark.timeout(420)
def test_a_burst_wakes_the_pool_drains_it_and_returns_to_zero_without_cutting_work(
    operator: Operator, kube_namespace: str, url: str, tmp_path: Path
) -> None:
    cluster = operator.cluster
    with stand_in_kubelet(cluster, kube_namespace, tmp_path) as record:
        report = run_burst(cluster, kube_namespace, url, tmp_path, tasks=10_000, seconds=0.05)
        records = kubelet_records(record)
    print(
        f"\n[burst] {report.tasks} tasks: first start {report.first_start_seconds}s, drained "
        f"{report.drain_seconds}s, at zero again {report.zero_again_seconds}s, peak "
        f"{report.peak_replicas} replicas, {report.tasks_per_second_per_replica} tasks/s "
        f"per replica, ran twice: {report.duplicates}"
    )
    assert report.peak_replicas == 4  # max replicas, reached, never exceeded
    assert report.duplicates == 0  # no crash, no lost lease: nothing runs twice
    # Scale-down never cuts work: every worker drained on SIGTERM, none was SIGKILLed.
    assert not [r for r in records if r["event"] == "sigkill"]
    terminated = [r for r in records if r["event"] == "exited" and "after" in r]
    assert len(terminated) >= 4 and all(r["code"] == 0 for r in terminated)


@pytest.mark.timeout(420)
def test_chaos_kills_workers_and_restarts_the_database_and_loses_nothing(
    operator: Operator,
    kube_namespace: str,
    url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    cluster = operator.cluster
    server = request.getfixturevalue(
        "postgres_server" if url.startswith("postgres") else "redis_server"
    )
    log = tmp_path / "executions.log"
    with stand_in_kubelet(cluster, kube_namespace, tmp_path) as record:
        apply(
            cluster,
            kube_namespace,
            *pool_objects("chaos", url, log, autoscaling={"minReplicas": 2, "maxReplicas": 3}),
        )
        ids = push_work(url, 3000, 0.05)
        killed, restarted = 0, False
        deadline = time.monotonic() + 300
        while len(executions(log)[1]) < len(ids):
            assert time.monotonic() < deadline, "the chaos run did not finish"
            time.sleep(3)
            alive = _live_worker_pids(kubelet_records(record))
            if alive and killed < 4:
                os.kill(random.choice(alive), signal.SIGKILL)
                killed += 1
            elif not restarted:
                server.restart()
                restarted = True
        starts, ends, _ = executions(log)
        assert set(ends) == set(ids)  # nothing lost
        duplicates = sum(count - 1 for count in starts.values() if count > 1)
        print(
            f"\n[chaos] {len(ids)} tasks, {killed} workers SIGKILLed, database restarted: "
            f"{duplicates} tasks ran twice"
        )
        # Only tasks in flight on a killed worker (10 each) or lost at the restart rerun.
        assert duplicates <= killed * 10 + 30
        # The pool converges back to its bounds with every pod ready.
        try:
            eventually(
                lambda: _ready(cluster, kube_namespace, "chaos") == 2,
                120,
                "the pool back at 2 ready replicas",
            )
        except AssertionError:
            pods = cluster.kubectl("get", "pods", "-n", kube_namespace, "-o", "wide").stdout
            deployment = cluster.kubectl(
                "get",
                "deployment",
                "chaos-workers",
                "-n",
                kube_namespace,
                "-o",
                "jsonpath={.status}",
            ).stdout
            raise AssertionError(f"not converged:\n{pods}\n{deployment}") from None


def test_bad_input_is_reported_and_recovered_from(
    operator: Operator, kube_namespace: str, postgres_url: str, tmp_path: Path
) -> None:
    migrate(postgres_url)
    cluster = operator.cluster
    log = tmp_path / "executions.log"
    with stand_in_kubelet(cluster, kube_namespace, tmp_path):
        # An unknown app path: the workers exit at once with one line; the pool says so.
        apply(
            cluster,
            kube_namespace,
            *pool_objects(
                "typo",
                postgres_url,
                log,
                app="tests.e2e.sample_ap:app",
                autoscaling={"minReplicas": 1, "maxReplicas": 2},
            ),
        )
        crashing = eventually(
            lambda: _false(pool_condition(cluster, kube_namespace, "typo", "WorkersHealthy")),
            60,
            "WorkersHealthy=False",
        )
        assert "cannot import 'tests.e2e.sample_ap'" in crashing["message"]
        assert crashing["reason"] == "WorkerCrashing"
        cluster.kubectl(
            "patch",
            "workerpool",
            "typo",
            "-n",
            kube_namespace,
            "--type=merge",
            "-p",
            '{"spec": {"app": "tests.e2e.sample_app:app"}}',
        )
        eventually(
            lambda: _true(pool_condition(cluster, kube_namespace, "typo", "WorkersHealthy")),
            90,
            "healthy workers",
        )

        # A wrong password: replicas hold, the condition and an Event say what to check.
        wrong = postgres_url.replace(postgres_url.split("//")[1].split("@")[0], "nobody:wrong")
        apply(cluster, kube_namespace, *pool_objects("locked", wrong, log))
        refused = eventually(
            lambda: _false(pool_condition(cluster, kube_namespace, "locked", "ScalingActive")),
            30,
            "ScalingActive=False",
        )
        assert "wrong" not in refused["message"] and "Secret" in refused["message"]
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "locked-backend"},
            "stringData": {"url": postgres_url},
        }
        apply(cluster, kube_namespace, secret)
        eventually(
            lambda: _true(pool_condition(cluster, kube_namespace, "locked", "ScalingActive")),
            90,
            "recovery",
        )
        assert operator.process.poll() is None  # it kept running through all of it


def _false(condition: dict[str, Any] | None) -> dict[str, Any] | None:
    return condition if condition and condition["status"] == "False" else None


def _true(condition: dict[str, Any] | None) -> dict[str, Any] | None:
    return condition if condition and condition["status"] == "True" else None


def _live_worker_pids(records: list[dict[str, Any]]) -> list[int]:
    alive: dict[str, int] = {}
    for entry in records:
        if entry["event"] == "started":
            alive[entry["pod"]] = entry["pid"]
        elif entry["event"] in ("exited", "sigkill", "killed"):
            alive.pop(entry["pod"], None)
    return [pid for pid in alive.values() if _running(pid)]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _ready(cluster: KubernetesCluster, namespace: str, pool: str) -> int:
    deployment = cluster.kubectl_json("get", "deployment", f"{pool}-workers", "-n", namespace)
    return int((deployment.get("status") or {}).get("readyReplicas") or 0)
