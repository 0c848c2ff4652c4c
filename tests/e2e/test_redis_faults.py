"""redis-server restarted twice under two busy worker processes: nothing lost, duplicates counted.

Matrix: Redis only, on a server of the test's own (AOF on, ``appendfsync everysec``, as the
backend's documentation asks), since a restart cuts every connection to it. The workers run
through the real CLI (tests/e2e/conftest.py); the handlers' log tells how often each task
started and ended. The first restart is clean (SIGTERM: Redis writes out its AOF) and falls
while a producer is pushing; the second is a crash (SIGKILL) with every push long done.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from pathlib import Path

import pytest

from shoal.app import App
from tests.e2e import sample_app
from tests.e2e.conftest import Workers, migrate, push, wait_for
from tests.servers.redis import RedisServer

TASKS = 5000
PROCESSES = 2
CONCURRENCY = 10
PREFIX = "faults"
EVERYSEC_WINDOW = 2.0
"""Seconds of acknowledged writes a crash may lose with ``appendfsync everysec``: Redis may
hold back an AOF write up to 2 s while a slow fsync runs."""


def test_restarts_mid_run_lose_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    url = server.url(prefix=PREFIX)
    workers = Workers(url, tmp_path / "events.log")

    def in_flight() -> int:
        """Tasks leased or started and not ended: what a restart may make run twice."""
        with server.client() as client:
            leased = int(client.zcard(f"{{{PREFIX}:e2e}}:leases"))
        events = workers.events()
        unfinished = {r[1] for r in events if r[0] == "start"} - {
            r[1] for r in events if r[0] == "end"
        }
        return max(leased, len(unfinished))

    def ended() -> int:
        return len(workers.count("end"))

    late: list[str] = []
    failures: list[BaseException] = []

    def produce() -> None:
        """The second half of the tasks, in batches spread over the first restart, from one
        long-lived app as a web process would push them (opening an app fails fast)."""

        async def run() -> None:
            app = App(url)
            app.tasks = sample_app.app.tasks
            async with app:
                work = app.tasks["tests.e2e.sample_app.work"].configure()
                for _ in range(10):
                    batch = [work.prepare(seconds=0.003) for _ in range(TASKS // 20)]
                    late.extend(await app.push_many(batch))
                    await asyncio.sleep(0.05)

        try:
            asyncio.run(run())
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    try:
        with server.client() as client:
            found = client.config_get("append*")
            assert (found["appendonly"], found["appendfsync"]) == ("yes", "everysec")
        migrate(url)
        early = push(url, [{"seconds": 0.003}] * (TASKS // 2))
        # A lease of 10 s outlives each outage by far (heartbeats every 1.7 s); a claim the
        # crash forgot is simply claimed again, and a lost ack's task re-queued by the reaper.
        flags = ("--concurrency", str(CONCURRENCY), "--lease-seconds", "10")
        processes = [workers.start(*flags) for _ in range(PROCESSES)]
        wait_for(lambda: ended() >= TASKS // 10, timeout=60, what="a tenth of the tasks")

        producer = threading.Thread(target=produce, name="producer")
        producer.start()
        time.sleep(0.2)  # a few batches in: the restart cuts the producer's connection too
        clean_in_flight, clean_ended = in_flight(), ended()
        started = time.monotonic()
        server.restart()
        clean_outage = time.monotonic() - started
        producer.join(60)
        assert not producer.is_alive() and not failures, failures
        assert len(late) == TASKS // 2

        wait_for(lambda: ended() >= TASKS * 6 // 10, timeout=60, what="six tenths")
        crash_in_flight, crash_ended = in_flight(), ended()
        started, crashed_at = time.monotonic(), time.time()
        server.restart(kill=True)
        crash_outage = time.monotonic() - started

        wait_for(lambda: ended() == TASKS, timeout=90, what="every task")
        for process in processes:
            assert process.poll() is None, workers.output(process)  # reconnected, not crashed
            process.send_signal(signal.SIGTERM)
        for process in processes:
            assert process.wait(30) == 0, workers.output(process)

        starts, ends = workers.count("start"), workers.count("end")
        recent = sum(
            1
            for event, _, _, _, at in workers.events()
            if event == "end" and crashed_at - EVERYSEC_WINDOW < at <= crashed_at
        )
        twice = sorted(task_id for task_id, count in starts.items() if count > 1)
        with capsys.disabled():
            print(
                f"\n[redis restarts] {TASKS} tasks, {PROCESSES} workers x {CONCURRENCY}: "
                f"clean restart after {clean_ended} ({clean_outage:.1f}s, {clean_in_flight} "
                f"in flight, producer pushing), crash after {crash_ended} ({crash_outage:.1f}s, "
                f"{crash_in_flight} in flight, {recent} ended in the 2 s before); "
                f"ran twice: {len(twice)} {twice[:10]}",
                flush=True,
            )
        assert clean_ended < crash_ended < TASKS  # both restarts fell in the middle of the run
        assert set(ends) == set(early) | set(late)  # none lost
        # A clean restart keeps every write; a crash may lose the last `everysec` window.
        assert len(twice) <= clean_in_flight + crash_in_flight + recent
        outputs = "".join(workers.output(p) for p in processes)
        assert "Traceback" not in outputs
        with server.client() as client:
            base = f"{{{PREFIX}:e2e}}"
            assert client.zcard(f"{base}:s:done") == TASKS
            for rest in ("ready", "scheduled", "leases", "s:queued", "s:running", "s:dead"):
                assert client.zcard(f"{base}:{rest}") == 0, rest
            pipe = client.pipeline(transaction=False)
            for task_id in ends:
                pipe.hget(f"{base}:t:{task_id}", "attempts")
            attempts = [int(n) for n in pipe.execute()]
        assert sum(1 for n in attempts if n != 1) == len(twice)
    finally:
        workers.stop_all()
        server.stop()
