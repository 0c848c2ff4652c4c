"""The operator wakes a pool at zero ahead of a schedule's tick, and lets it go back to zero.

On the test cluster (apiserver only) with the stand-in kubelet (tests/e2e/kubelet.py) and a
real PostgreSQL: a WorkerPool with ``minReplicas: 0`` serves an every-two-minutes schedule
(``tests.e2e.periodic_app:two_minutes``) that ``shoal migrate --app`` registered.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.scenarios import kubelet_records, stand_in_kubelet
from tests.k8s.conftest import Operator, apply, backend_objects, replicas

ROOT = Path(__file__).resolve().parents[2]


def starts(log: Path) -> list[tuple[int, float]]:
    """(tick epoch, start time) of each tick the workers logged."""
    if not log.exists():
        return []
    text = log.read_text()
    return [
        (int(line.split()[2]), float(line.split()[5]))
        for line in text[: text.rfind("\n") + 1].splitlines()
    ]


@pytest.mark.timeout(480)
def test_a_pool_at_zero_runs_each_tick_on_time_and_is_at_zero_between_ticks(
    operator: Operator, kube_namespace: str, postgres_url: str, tmp_path: Path
) -> None:
    cluster = operator.cluster
    app = "tests.e2e.periodic_app:two_minutes"
    subprocess.run(
        [sys.executable, "-m", "shoal", "migrate", "--app", app, "--backend-url", postgres_url],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    log = tmp_path / "ticks.log"
    pool = {
        "image": "shoal-e2e:dev",
        "app": app,
        "concurrency": 2,
        "shutdownTimeoutSeconds": 5,
        "autoscaling": {
            "minReplicas": 0,
            "maxReplicas": 2,
            "scaleDownStabilizationSeconds": 2,
            "idleCooldownSeconds": 5,
        },
        "template": {
            "env": [
                {"name": "SHOAL_TEST_LOG", "value": str(log)},
                {"name": "SHOAL_POLL_INTERVAL", "value": "0.5"},
            ]
        },
    }
    samples: list[tuple[float, int]] = []
    with stand_in_kubelet(cluster, kube_namespace, tmp_path) as record:
        apply(cluster, kube_namespace, *backend_objects("ticks", postgres_url, pool=pool))
        # Ticks due sooner than a lead after the pool exists cannot be woken for in time.
        fair = time.time() + 40

        def judged() -> list[tuple[int, float]]:
            return [(tick, when) for tick, when in starts(log) if tick > fair]

        deadline = time.monotonic() + 420
        while len(judged()) < 2 and time.monotonic() < deadline:
            samples.append((time.time(), replicas(cluster, kube_namespace, "ticks") or 0))
            time.sleep(1.0)
        status = cluster.kubectl_json("get", "queue", "ticks", "-n", kube_namespace)["status"]
        pods = kubelet_records(record)
    ran = judged()
    assert len(ran) >= 2, f"ticks run: {starts(log)}; replicas sampled: {samples[-30:]}"
    (first, first_at), (second, _) = ran[:2]
    assert second - first == 120
    assert len({tick for tick, _ in starts(log)}) == len(starts(log))  # each tick once
    lateness = [when - tick for tick, when in ran[:2]]
    print(json.dumps({"prewarm_lateness_s": [round(x, 3) for x in lateness]}))
    # Woken ahead by the lead (the pod start it observed, 30 s until then): on time.
    assert max(lateness) <= 2.0, lateness
    for tick, _ in ran[:2]:  # a worker was up and ready when the tick came due: woken ahead
        ready = {r["pod"]: r["time"] for r in pods if r["event"] == "ready" and r["time"] < tick}
        gone = {r["pod"] for r in pods if r["event"] == "exited" and r["time"] < tick}
        assert set(ready) - gone, f"no worker ready at {tick}: {pods}"
    between = [count for when, count in samples if first_at + 30 < when < second - 40]
    assert between and min(between) == 0, f"never at zero between ticks: {samples}"
    assert status.get("nextDue"), status
