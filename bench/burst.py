"""A burst into a pool at zero, end to end: operator, real backend, stand-in kubelet.

10,000 tasks of 50 ms are pushed into a WorkerPool at zero replicas (concurrency 10, at most
4 replicas); the script follows the pool until it is back at zero and prints one JSON line
per backend (time to the first task started, time to drain, time back at zero, peak
replicas, tasks/s per replica, tasks that ran twice), then plots queue depth, desired and
ready replicas over time to bench/burst.png.

Usage: python bench/burst.py [--tasks 10000] [--backends postgres,redis]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, emit
from tests.e2e.scenarios import BurstReport, run_burst, stand_in_kubelet
from tests.k8s.conftest import Operator, migrate
from tests.servers.kubernetes import KubernetesCluster, find_bin_dir
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer


def plot(reports: dict[str, BurstReport], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(reports), 1, figsize=(9, 3.4 * len(reports)), squeeze=False)
    for axis, (backend, report) in zip(axes[:, 0], reports.items(), strict=True):
        samples = report.timeline.samples
        times = [s.at for s in samples]
        axis.plot(times, [s.depth for s in samples], color="tab:blue", label="ready tasks")
        axis.set_ylabel("ready tasks", color="tab:blue")
        axis.set_xlabel("seconds since the burst was pushed")
        replicas = axis.twinx()
        replicas.step(
            times,
            [s.desired for s in samples],
            where="post",
            color="tab:orange",
            label="desired replicas",
        )
        replicas.step(
            times,
            [s.ready for s in samples],
            where="post",
            color="tab:green",
            label="ready replicas",
        )
        replicas.set_ylabel("replicas")
        replicas.set_ylim(0, max(s.desired for s in samples) + 1)
        axis.set_title(
            f"{backend}: {report.tasks} tasks of 50 ms into a pool at zero "
            f"(drained in {report.drain_seconds:.0f}s, back at zero at "
            f"{report.zero_again_seconds:.0f}s)"
        )
        lines = axis.get_legend_handles_labels()
        more = replicas.get_legend_handles_labels()
        axis.legend(lines[0] + more[0], lines[1] + more[1], loc="upper right")
    figure.tight_layout()
    figure.savefig(target, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--backends", default="postgres,redis")
    arguments = parser.parse_args()
    reports: dict[str, BurstReport] = {}
    with tempfile.TemporaryDirectory(prefix="shoal-burst-") as folder:
        base = Path(folder)
        cluster = KubernetesCluster(base / "k8s", find_bin_dir())
        postgres, redis = PostgresServer(), RedisServer(base / "redis")
        with cluster, postgres, redis:
            cluster.kubectl("apply", "-f", str(ROOT / "crds"))
            operator = Operator(cluster, base)
            try:
                urls = {
                    "postgres": postgres.url(postgres.create_database("burst")),
                    "redis": redis.url(prefix="burst"),
                }
                for backend in arguments.backends.split(","):
                    migrate(urls[backend])
                    namespace = f"burst-{backend}"
                    cluster.kubectl("create", "namespace", namespace)
                    work = base / f"work-{backend}"
                    work.mkdir()
                    with stand_in_kubelet(cluster, namespace, work):
                        report = run_burst(
                            cluster, namespace, urls[backend], work, tasks=arguments.tasks
                        )
                    reports[backend] = report
                    emit(
                        "burst_from_zero",
                        backend=backend,
                        tasks=report.tasks,
                        first_task_started_seconds=report.first_start_seconds,
                        drained_seconds=report.drain_seconds,
                        back_at_zero_seconds=report.zero_again_seconds,
                        peak_replicas=report.peak_replicas,
                        tasks_per_second_per_replica=report.tasks_per_second_per_replica,
                        ran_twice=report.duplicates,
                    )
            finally:
                operator.stop()
    target = ROOT / "bench" / "burst.png"
    plot(reports, target)
    emit("burst_plot", written=str(target.relative_to(ROOT)))


if __name__ == "__main__":
    main()
