"""Redis end to end: no-op tasks through one worker process, against redis-benchmark's figures.

Starts its own redis-server on loopback (tests/servers/redis.py: AOF on, appendfsync
everysec, as the backend's docs ask for) and prints JSON lines:
- ``redis_benchmark``: requests/s of single-client ``redis-benchmark`` (``-c 1``) for the
  primitives shoal's scripts are made of: LPUSH (the floor's reference), EVALSHA of a
  trivial script (the cost of one script call), ZADD, ZPOPMIN and HSET;
- ``redis_push_many``: tasks/s pushed in batches of 1,000;
- ``redis_end_to_end``: tasks/s for one worker process at concurrency 20, from its first
  claim until no task is left, as a ratio of the single-client LPUSH (the floor is 0.5) and
  EVALSHA rates measured in the same run, and the worker's CPU microseconds per task;
- ``redis_enqueue_to_start``: milliseconds from just before a push to the handler starting,
  p50/p95/p99, one task at a time to an idle worker process woken by pub/sub (the floor is
  10 ms at p99).
Both carry the machine's one-minute load average: the figures are of a shared machine.
``--profile`` also runs a worker in this process under cProfile and writes the top of the
profile to bench/profiles/redis.txt.

Usage: python bench/redis_throughput.py [--tasks 20000] [--samples 500] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ROOT,
    emit,
    end_to_end,
    enqueue_to_start,
    point,
    profile_worker,
    quantile,
)
from bench.noop_app import app
from tests.servers.redis import RedisServer

CONCURRENCY = 20
END_TO_END_FLOOR = 0.5
"""shoal's end-to-end rate as a share of single-client ``redis-benchmark -t lpush``."""
LATENCY_FLOOR_MS = 10.0
"""The p99 of enqueue to start, idle worker."""
PRIMITIVES = ("lpush", "evalsha", "zadd", "zpopmin", "hset")


def redis_benchmark(server: RedisServer, requests: int) -> dict[str, float]:
    """Requests/s of one client (``-c 1``, no pipelining) for each of :data:`PRIMITIVES`."""
    with server.client() as client:
        sha = client.script_load("return 1")
    base = ["redis-benchmark", "-h", "127.0.0.1", "-p", str(server.port), "-c", "1"]
    base += ["-n", str(requests), "--csv"]
    runs = [["-t", "lpush,zadd,zpopmin,hset"], ["evalsha", sha, "0"]]
    rates: dict[str, float] = {}
    for extra in runs:
        output = subprocess.run([*base, *extra], check=True, capture_output=True, text=True)
        for row in csv.DictReader(io.StringIO(output.stdout)):
            rates[row["test"].split()[0].lower()] = float(row["rps"])
    with server.client() as client:
        client.delete("mylist", "myzset", "myhash", "key:__rand_int__")
    return {name: rates[name] for name in PRIMITIVES}


def use(url: str) -> None:
    point(app, url)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=20_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    arguments = parser.parse_args()
    count = arguments.tasks
    with tempfile.TemporaryDirectory() as folder, RedisServer(Path(folder, "redis")) as server:
        primitives = redis_benchmark(server, count)
        for command, rate in primitives.items():
            emit(
                "redis_benchmark",
                command=command,
                clients=1,
                requests=count,
                requests_per_second=round(rate),
            )
        throughput_url = server.url(prefix="throughput")
        push_rate, rate, worker_cpu = await end_to_end(app, throughput_url, count, CONCURRENCY)
        emit("redis_push_many", tasks=count, batch=1000, tasks_per_second=round(push_rate))
        ratio = rate / primitives["lpush"]
        emit(
            "redis_end_to_end",
            tasks=count,
            concurrency=CONCURRENCY,
            tasks_per_second=round(rate),
            worker_cpu_us_per_task=worker_cpu,
            ratio_to_lpush_c1=round(ratio, 3),
            ratio_to_evalsha_c1=round(rate / primitives["evalsha"], 3),
            floor=END_TO_END_FLOOR,
            meets_floor=ratio >= END_TO_END_FLOOR,
            load_average_1m=round(os.getloadavg()[0], 2),
        )
        spacing = 0.01
        url = server.url(prefix="latency")
        use(url)  # 0.5 s: the worker's listener subscribes
        delays = await enqueue_to_start(
            app, url, Path(folder, "latency.log"), arguments.samples, spacing, settle=0.5
        )
        p99 = quantile(delays, 99)
        emit(
            "redis_enqueue_to_start",
            samples=len(delays),
            spacing_ms=spacing * 1000,
            p50_ms=quantile(delays, 50),
            p95_ms=quantile(delays, 95),
            p99_ms=p99,
            max_ms=round(max(delays) * 1000, 3),
            floor_p99_ms=LATENCY_FLOOR_MS,
            meets_floor=p99 <= LATENCY_FLOOR_MS,
            load_average_1m=round(os.getloadavg()[0], 2),
        )
        if arguments.profile:
            use(server.url(prefix="profile"))
            report = await profile_worker(app, count, CONCURRENCY, "redis")
            target = ROOT / "bench" / "profiles" / "redis.txt"
            target.parent.mkdir(exist_ok=True)
            target.write_text(report)
            emit("redis_profile", written=str(target.relative_to(ROOT)))


if __name__ == "__main__":
    asyncio.run(main())
