"""Two operators and one Lease, on the real kube-apiserver: one acts, the other stands by
and takes over when the leader is SIGKILLed in the middle of a burst; no scaling decision is
applied twice (each generation of the Deployment is one Event from one operator, and the
replicas only ever go up from where the last decision left them).

There is no kubelet here, so nothing drains the queue: the burst's depth only grows, and so
must the replicas. The figures (failover time from the kill to the Lease taken and to the
first new scale) are printed as a JSON line.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from tests.k8s.conftest import Operator, apply, backend_objects, eventually, push, replicas
from tests.servers.kubernetes import KubernetesCluster

FAILOVER_CEILING = 15.0
"""Seconds from the leader's death to the standby's first scale: the issue's bound."""
SCALE = re.compile(r"scale up (\d+) → (\d+)")


def lease_holder(cluster: KubernetesCluster, namespace: str, name: str) -> str | None:
    found = cluster.kubectl("get", "lease", name, "-n", namespace, "-o", "json", check=False)
    if found.returncode != 0:
        return None
    return (json.loads(found.stdout).get("spec") or {}).get("holderIdentity")


def candidate(cluster: KubernetesCluster, directory: Path, namespace: str, lease: str) -> Operator:
    directory.mkdir()
    return Operator(
        cluster,
        directory,
        args=["--leader-election", "--lease-namespace", namespace, "--lease-name", lease],
    )


def scale_events(cluster: KubernetesCluster, namespace: str) -> list[dict[str, Any]]:
    listed = cluster.kubectl_json("get", "events", "-n", namespace)
    return [e for e in listed["items"] if e["reason"].startswith("Scaled")]


def test_the_standby_takes_over_a_killed_leader_within_15s_and_applies_nothing_twice(
    crds: KubernetesCluster, kube_namespace: str, redis_url: str, tmp_path: Path
) -> None:
    cluster, lease = crds, f"shoal-operator-{uuid.uuid4().hex[:6]}"
    first = candidate(cluster, tmp_path / "a", kube_namespace, lease)
    second: Operator | None = None
    stop = threading.Event()
    try:
        leader = eventually(lambda: lease_holder(cluster, kube_namespace, lease), 30, "a leader")
        second = candidate(cluster, tmp_path / "b", kube_namespace, lease)
        standby = second
        eventually(lambda: "standing by" in standby.log.read_text(), 10, "the standby's log")
        pool = {
            "concurrency": 5,
            "autoscaling": {"minReplicas": 0, "maxReplicas": 40, "idleCooldownSeconds": 300},
        }
        apply(cluster, kube_namespace, *backend_objects("burst", redis_url, pool=pool))
        eventually(lambda: replicas(cluster, kube_namespace, "burst") == 0 or None, 30, "a pool")

        def burst() -> None:  # a task every 0.25 s: a new replica wanted every 1.25 s
            while not stop.wait(0.25):
                push(redis_url, "burst", 1)

        pusher = threading.Thread(target=burst, daemon=True)
        pusher.start()
        eventually(lambda: (replicas(cluster, kube_namespace, "burst") or 0) >= 3, 30, "3")
        before = replicas(cluster, kube_namespace, "burst")
        # Killed right after a scale seen through kubectl, by when its Event (posted just
        # after the patch) is in: the count of Events below is then exact.
        first.process.kill()  # SIGKILL: no release of the Lease, no goodbye
        killed = time.monotonic()
        first.process.wait(10)
        assert lease_holder(cluster, kube_namespace, lease) == leader  # the Lease outlives it

        def taken_over() -> str | None:
            holder = lease_holder(cluster, kube_namespace, lease)
            return holder if holder not in (None, leader) else None

        successor = eventually(taken_over, FAILOVER_CEILING + 10, "the standby to take over")
        lease_taken = time.monotonic() - killed
        eventually(
            lambda: (replicas(cluster, kube_namespace, "burst") or 0) > (before or 0),
            FAILOVER_CEILING + 10,
            "the new leader's first scale",
        )
        first_scale = time.monotonic() - killed
        time.sleep(3)  # a few more of the new leader's decisions
        stop.set()
        pusher.join(10)
        print(
            json.dumps(
                {
                    "bench": "operator_failover",
                    "lease_seconds": 8,
                    "lease_taken_s": round(lease_taken, 2),
                    "first_scale_s": round(first_scale, 2),
                    "replicas_at_kill": before,
                }
            )
        )
        assert first_scale <= FAILOVER_CEILING, f"first scale {first_scale:.1f}s after the kill"

        # Every scale is one Event from the operator that led at the time ...
        events = scale_events(cluster, kube_namespace)
        by: dict[str, list[tuple[int, int]]] = {leader: [], successor: []}
        for event in events:
            found = SCALE.search(event["message"])
            assert found, event["message"]  # only ever up: nothing drains the queue
            by[event["reportingInstance"]].append((int(found[1]), int(found[2])))
        assert by[leader] and by[successor], by
        # ... the replicas go up in one chain, each decision from where the last one left
        # them, the new leader's starting where the old one's ended ...
        chain = sorted(by[leader]) + sorted(by[successor])
        assert chain[0][0] == 0
        assert all(a[1] == b[0] for a, b in itertools.pairwise(chain)), chain
        assert all(a < b for a, b in chain), chain
        # ... and each generation of the Deployment is one of those Events: a decision
        # applied twice would be a second Event for no new generation.
        deployment = cluster.kubectl_json(
            "get", "deployment", "burst-workers", "-n", kube_namespace
        )
        assert deployment["metadata"]["generation"] == 1 + len(chain), chain
        reasons = {
            e["reason"]
            for e in cluster.kubectl_json("get", "events", "-n", kube_namespace)["items"]
        }
        assert not reasons & {"ReplicasRestored", "DeploymentRestored"}, reasons  # no fights
        assert deployment["spec"]["replicas"] == chain[-1][1]
    finally:
        stop.set()
        if second is not None:
            second.stop()
        first.stop()
