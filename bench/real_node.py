"""The real single-node cluster of the tests: how long it takes to come up and to go away.

Brings up what the ``real_cluster`` fixture does (``tests/servers/kubernetes.py``), with the
images built as ``tests/servers/docker.py`` builds them (cached after a first run), and prints
JSON lines:

- ``real_node_up``: seconds for the control plane (etcd, kube-apiserver,
  kube-controller-manager), containerd with the pause image, ``docker save`` + ``ctr images
  import`` of shoal's three images, and the node's processes up to the Node Ready;
- ``real_node_pod``: a pod of the example image (``--help``, ``restartPolicy: Never``) from
  its creation to its container started and to Succeeded;
- ``real_node_down``: seconds for the teardown (kubelet, sandboxes through the CRI,
  kube-proxy's rules, containerd, bridge, mounts, cgroups; then the control plane).

Usage: python bench/real_node.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit
from tests.servers.docker import CACHE, DockerDaemon, Images, base_tarball, build_images
from tests.servers.kubernetes import KubernetesCluster, find_bin_dir


def pod_times(cluster: KubernetesCluster, image: str) -> dict[str, float]:
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bench-help", "namespace": "default"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {"name": "help", "image": image, "imagePullPolicy": "Never", "args": ["--help"]}
            ],
        },
    }
    started = time.monotonic()
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    running = None
    while True:
        found = cluster.kubectl_json("get", "pod", "bench-help", "-n", "default")
        statuses = found.get("status", {}).get("containerStatuses") or [{}]
        state = statuses[0].get("state", {})
        if running is None and ("running" in state or "terminated" in state):
            running = time.monotonic() - started
        if found["status"].get("phase") in ("Succeeded", "Failed"):
            phase = found["status"]["phase"]
            break
        if time.monotonic() - started > 120:
            raise TimeoutError(f"the pod never finished: {found['status']}")
        time.sleep(0.05)
    finished = time.monotonic() - started
    cluster.kubectl("delete", "pod", "bench-help", "-n", "default", "--wait=true")
    if phase != "Succeeded":
        raise RuntimeError(f"the pod ended {phase}")
    return {"to_started_s": round(running or finished, 2), "to_succeeded_s": round(finished, 2)}


def one_run(daemon: DockerDaemon, images: Images, bin_dir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="shoal-bench-node-") as folder:
        cluster = KubernetesCluster(Path(folder), bin_dir, real_node=True)
        assert cluster.node is not None
        marks = [time.monotonic()]
        try:
            cluster.start()  # the control plane, then containerd with the pause image
            marks.append(time.monotonic())
            archive = Path(folder) / "images.tar"
            daemon.docker("save", "--output", str(archive), *images.names(), timeout=600)
            cluster.node.import_image(archive)
            marks.append(time.monotonic())
            cluster.start_node()
            marks.append(time.monotonic())
            steps = ("control plane + containerd", "images imported", "node Ready")
            emit(
                "real_node_up",
                seconds={
                    s: round(b - a, 1) for s, a, b in zip(steps, marks[:-1], marks[1:], strict=True)
                },
                total_s=round(marks[-1] - marks[0], 1),
            )
            emit("real_node_pod", image=images.example, **pod_times(cluster, images.example))
        finally:
            stopping = time.monotonic()
            cluster.stop()
            emit("real_node_down", seconds=round(time.monotonic() - stopping, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    bin_dir = find_bin_dir(node=True)
    with (
        tempfile.TemporaryDirectory(prefix="shoal-bench-docker-") as folder,
        DockerDaemon(Path(folder), CACHE / "docker") as daemon,
    ):
        images = build_images(daemon, base_tarball())
        for _ in range(arguments.runs):
            one_run(daemon, images, bin_dir)


if __name__ == "__main__":
    main()
