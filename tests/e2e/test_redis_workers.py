"""Several workers and queues in one ``shoal worker`` process share one Redis pool and listener.

Matrix: Redis only, on the session's server. tests/integration/test_redis.py shows two apps
and their ``Worker`` objects sharing one backend in one event loop; this shows the same for the
real CLI process (``--workers 3`` over two queues), counting its connections on the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path

import psutil

from shoal.app import App
from tests.e2e import sample_app
from tests.e2e.conftest import Workers, migrate, wait_for
from tests.servers.redis import RedisServer

WORKERS = 3


def push_to(url: str, queues: list[str], per_queue: int) -> list[str]:
    async def run() -> list[str]:
        app = App(url)
        app.tasks = sample_app.app.tasks
        async with app:
            work = app.tasks["tests.e2e.sample_app.work"].configure()
            batch = [
                dataclasses.replace(work.prepare(seconds=0.02), queue=queue)
                for queue in queues
                for _ in range(per_queue)
            ]
            return await app.push_many(batch)

    return asyncio.run(run())


def test_one_process_holds_one_pool_and_one_listener(
    redis_server: RedisServer, redis_url: str, tmp_path: Path
) -> None:
    migrate(redis_url)
    ids = push_to(redis_url, ["e2e", "spare"], 300)
    workers = Workers(redis_url, tmp_path / "events.log")

    def held(pid: int) -> list[dict[str, str]]:
        """The server's view of every connection the process holds to it."""
        ports = {
            c.laddr.port
            for c in psutil.Process(pid).net_connections("tcp")
            if c.raddr and c.raddr.port == redis_server.port
        }
        with redis_server.client() as client:
            found = client.client_list()
        return [c for c in found if int(c["addr"].rsplit(":", 1)[1]) in ports]

    try:
        process = workers.start(
            "--workers", str(WORKERS), "--concurrency", "4", "--queues", "e2e,spare"
        )
        wait_for(lambda: bool(workers.count("start")), what="the first task")
        samples = []
        while len(workers.count("end")) < len(ids) // 2:  # busy: every worker claiming
            samples.append(held(process.pid))
            assert len(samples) < 500, "the workers hardly progress"
        wait_for(lambda: len(workers.count("end")) == len(ids), what="both queues")
        # Idle: every worker waits for work (the listener is started by the first wait).
        wait_for(lambda: any(int(c["sub"]) for c in held(process.pid)), what="the listener")
        samples += [held(process.pid) for _ in range(5)]
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, workers.output(process)
    finally:
        workers.stop_all()
    # One listener for every worker and queue; a worker has at most three round trips on
    # the way (its claim, the batch of outcomes it records, and its loop's heartbeat or
    # reap), so the shared pool never needs more than three connections per worker.
    assert all(sum(int(c["sub"]) > 0 for c in sample) <= 1 for sample in samples), samples
    assert max(len(sample) for sample in samples) <= 3 * WORKERS + 1, samples
    assert workers.count("start") == workers.count("end")
    assert set(workers.count("end")) == set(ids)
    assert max(workers.count("end").values()) == 1
    assert {row[3] for row in workers.events()} == {process.pid}
