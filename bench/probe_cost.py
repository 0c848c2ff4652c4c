"""What one Kubernetes probe of a worker costs: the ``exec`` probe the operator used to render
(``shoal check --skip-backend --health-file ...``, a Python process per probe) against an
``httpGet`` of the worker's health endpoint (``--health-port``), answered by a thread.

One worker runs on a migrated SQLite file, with both the health file and the endpoint; each
probe is timed (wall) and charged its CPU: the child process's for ``exec``, the worker's and
this client's for ``httpGet``. Prints one JSON line per kind of probe.

Run: ``python bench/probe_cost.py [--exec-probes 20] [--http-probes 500]``.
"""

from __future__ import annotations

import argparse
import http.client
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import ROOT, emit
from tests.servers.ports import free_port

SHOAL = str(Path(sys.executable).with_name("shoal"))  # the console script, as in the image


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def figures(walls: list[float], cpu: float) -> dict[str, float | int]:
    walls_ms = sorted(w * 1000 for w in walls)
    return {
        "probes": len(walls),
        "wall_ms_p50": round(statistics.median(walls_ms), 2),
        "wall_ms_max": round(walls_ms[-1], 2),
        "cpu_ms_per_probe": round(cpu * 1000 / len(walls), 3),
    }


def exec_probes(health_file: Path, count: int) -> dict[str, float | int]:
    command = [SHOAL, "check", "--skip-backend", "--health-file", str(health_file)]
    command += ["--max-age", "60"]
    walls = []
    before = cpu_of_children()
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    return figures(walls, cpu_of_children() - before)


def http_probes(port: int, worker: psutil.Process, count: int) -> dict[str, float | int]:
    walls = []
    before = cpu_of(worker) + time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)  # one per probe
        connection.request("GET", "/livez")
        answer = connection.getresponse()
        answer.read()
        connection.close()
        assert answer.status == 200, answer.status
        walls.append(time.perf_counter() - started)
    return figures(walls, cpu_of(worker) + time.process_time() - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exec-probes", type=int, default=20)
    parser.add_argument("--http-probes", type=int, default=500)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/probe.db"
        subprocess.run([SHOAL, "migrate", "--backend-url", url], check=True, capture_output=True)
        health_file, port = Path(folder) / "alive", free_port()
        flags = ["--backend-url", url, "--health-file", str(health_file)]
        flags += ["--health-port", str(port), "--health-address", "127.0.0.1"]
        command = [SHOAL, "--log-level", "warning", "worker", "bench.noop_app:app", *flags]
        worker = subprocess.Popen(command, cwd=ROOT)
        try:
            deadline = time.monotonic() + 30
            while not health_file.exists():  # the first heartbeat touched it
                if time.monotonic() > deadline:
                    raise RuntimeError("the worker did not start")
                time.sleep(0.05)
            emit("probe_exec", **exec_probes(health_file, arguments.exec_probes))
            emit(
                "probe_http", **http_probes(port, psutil.Process(worker.pid), arguments.http_probes)
            )
        finally:
            worker.terminate()
            worker.wait(30)


if __name__ == "__main__":
    main()
