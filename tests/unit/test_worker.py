"""The worker on the in-memory backend: concurrency, retries, timeouts, bad input, shutdown."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import pytest

from shoal import App, Context, Event, PermanentFailure, Retry, RetryPolicy, WorkerSettings
from shoal.core.ids import new_id
from shoal.core.models import NewTask, TaskStatus, utcnow
from shoal.testing import drain
from shoal.worker import Worker, run_workers


@pytest.fixture
async def app() -> AsyncIterator[App]:
    app = App("memory://", state={"greeting": "hello"})
    await app.open()
    yield app
    await app.close()


def fast(**overrides: object) -> WorkerSettings:
    values: dict[str, object] = {"poll_interval": 0.05, "reap_interval": 0.05}
    return WorkerSettings(**(values | overrides))  # type: ignore[arg-type]


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition that no event signals (it reads the worker's counters)."""
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_concurrency_is_a_hard_limit(app: App) -> None:
    running = 0
    peak = 0

    @app.task
    async def quick(n: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.001)
        running -= 1

    await quick.push_many([{"n": i} for i in range(200)])
    worker = Worker(app, fast(concurrency=4))  # short tasks: it claims ahead
    task = asyncio.create_task(worker.run())
    await until(lambda: worker.processed == 200)
    worker.stop()
    await task
    assert peak == 4


@pytest.mark.parametrize(("prefetch", "seconds"), [(0, 0.02), (None, 0.1)])
async def test_claims_never_exceed_free_slots_without_prefetch_or_for_slow_tasks(
    app: App, prefetch: int | None, seconds: float
) -> None:
    @app.task
    async def slow(n: int) -> None:
        await asyncio.sleep(seconds)

    await slow.push_many([{"n": i} for i in range(24)])
    worker = Worker(app, fast(concurrency=4, prefetch=prefetch))
    task = asyncio.create_task(worker.run())
    held = []
    while worker.processed < 24:
        await asyncio.sleep(0.005)
        held.append((await app.backend.stats(["default"]))["default"].running)
    worker.stop()
    await task
    assert max(held) == 4  # claimed only up to free slots, and kept them full


async def test_a_draining_worker_gives_back_what_it_claimed_ahead(app: App) -> None:
    started: list[int] = []

    @app.task
    async def slow(n: int) -> None:
        started.append(n)
        await asyncio.sleep(0.2)

    await slow.push_many([{"n": i} for i in range(10)])
    worker = Worker(app, fast(concurrency=2, prefetch=5))
    task = asyncio.create_task(worker.run())
    await until(lambda: len(started) == 2)
    assert (await app.backend.stats(["default"]))["default"].running == 7  # 2 run, 5 held
    worker.stop()
    await until(lambda: worker.in_flight == 2)  # the 5 held go back at once, not after
    assert (await app.backend.stats(["default"]))["default"].ready == 8
    await task
    assert worker.processed == 2
    queued = await app.backend.list_tasks(statuses=[TaskStatus.QUEUED])
    assert len(queued) == 8
    assert all(task.attempts == 0 for task in queued)  # never started: no attempt charged


async def test_tasks_held_past_their_lease_are_dropped_not_run(app: App) -> None:
    ran: list[int] = []
    gate = asyncio.Event()

    @app.task
    async def blocked(n: int) -> None:
        ran.append(n)
        await gate.wait()

    await blocked.push_many([{"n": i} for i in range(4)])
    worker = Worker(app, fast(concurrency=1, prefetch=3, lease_seconds=0.3))
    task = asyncio.create_task(worker.run())
    await until(lambda: ran == [0] and worker.in_flight == 4)
    # As a reaper would once their leases expired, and another worker takes them.
    await app.backend.release([claim.lease for claim in worker._claimed])
    assert len(await app.backend.claim(["default"], "thief", 10, 30)) == 3
    await until(lambda: worker.in_flight == 1)  # the next heartbeat finds them lost
    gate.set()
    await until(lambda: worker.processed == 1)
    worker.stop()
    await task
    assert ran == [0]


async def test_retry_policy_end_to_end(app: App) -> None:
    attempts_seen: list[tuple[int, float]] = []
    policy = RetryPolicy(max_attempts=5, base_delay=0.1, multiplier=2, jitter=0)

    @app.task(retry=policy)
    async def flaky(context: Context) -> None:
        attempts_seen.append((context.attempt, time.monotonic()))
        if context.attempt < 3:
            raise ConnectionError("try again")

    task_id = (await flaky.push()).id
    worker = Worker(app, fast(poll_interval=0.01))
    running = asyncio.create_task(worker.run())
    await until(lambda: len(attempts_seen) == 3)
    await asyncio.sleep(0.05)
    worker.stop()
    await running
    task = await app.backend.get(task_id)
    assert task is not None and task.status is TaskStatus.DONE and task.attempts == 3
    gaps = [b[1] - a[1] for a, b in itertools.pairwise(attempts_seen)]
    assert 0.1 <= gaps[0] < 0.25 and 0.2 <= gaps[1] < 0.35


async def test_timeouts_permanent_failures_and_retry_requests(app: App) -> None:
    @app.task(timeout=0.05, retry=RetryPolicy(max_attempts=1))
    async def sleepy() -> None:
        await asyncio.sleep(5)

    @app.task
    async def refuses() -> None:
        raise PermanentFailure("the account is closed")

    @app.task
    async def later() -> None:
        raise Retry(delay=600, reason="rate limited")

    ids = [(await sleepy.push()).id, (await refuses.push()).id, (await later.push()).id]
    await drain(app)
    timed_out, refused, postponed = [await app.backend.get(i) for i in ids]
    assert timed_out and timed_out.status is TaskStatus.DEAD
    assert timed_out.last_error and "timeout" in timed_out.last_error
    assert refused and refused.status is TaskStatus.DEAD
    assert refused.last_error == "PermanentFailure: the account is closed"
    assert postponed and postponed.status is TaskStatus.RETRYING
    assert postponed.run_at > utcnow() + timedelta(seconds=500)


async def test_bad_payloads_and_unknown_names_end_dead_and_work_goes_on(app: App) -> None:
    done = []

    @app.task
    async def good(n: int) -> None:
        done.append(n)

    def raw(name: str, payload: bytes) -> NewTask:
        return NewTask(new_id(), "default", name, payload, utcnow(), 3)

    undecodable = raw(good.name, b"\xff\xfe{{not json")
    misfit = raw(good.name, b'{"n": "three"}')
    unknown = raw("nobody.registered.this", b"{}")
    await app.push_many([undecodable, misfit, unknown])
    await good.push_many([{"n": 1}, {"n": 2}])
    await drain(app)
    assert sorted(done) == [1, 2]
    reasons = {}
    for task in [undecodable, misfit, unknown]:
        stored = await app.backend.get(task.id)
        assert stored is not None and stored.status is TaskStatus.DEAD and stored.attempts == 1
        reasons[task.id] = stored.last_error or ""
    assert "not valid JSON" in reasons[undecodable.id]
    assert "field 'n'" in reasons[misfit.id]
    assert "no task named 'nobody.registered.this'" in reasons[unknown.id]


async def test_sync_handlers_run_in_threads_with_context_and_state(app: App) -> None:
    seen = []

    @app.task
    def blocking(context: Context, word: str) -> None:
        seen.append(
            (threading.current_thread().name, context.state["greeting"], word, context.attempt)
        )

    await blocking.push(word="world")
    await drain(app)
    [(thread, greeting, word, attempt)] = seen
    assert thread.startswith("shoal-task") and (greeting, word, attempt) == ("hello", "world", 1)


async def test_hooks_see_every_transition(app: App) -> None:
    events: list[str] = []

    @app.on("task_succeeded")
    @app.on("task_started")
    @app.on("task_dead")
    def record(event: Event) -> None:
        events.append(event.name)

    @app.on("task_started")
    async def broken_hook(event: Event) -> None:
        raise RuntimeError("a hook bug must not stop the worker")

    @app.task(retry=RetryPolicy(max_attempts=1))
    async def maybe(ok: bool) -> None:
        if not ok:
            raise ValueError("no")

    await maybe.push(ok=True)
    await maybe.push(ok=False)
    await drain(app)
    assert sorted(events) == ["task_dead", "task_started", "task_started", "task_succeeded"]


async def test_stop_lets_short_tasks_finish_and_releases_the_rest(app: App) -> None:
    @app.task
    async def nap(seconds: float) -> None:
        await asyncio.sleep(seconds)

    short, long = (await nap.push(seconds=0.05)).id, (await nap.push(seconds=30)).id
    worker = Worker(app, fast(shutdown_timeout=0.5))
    running = asyncio.create_task(worker.run())
    await until(lambda: worker.in_flight == 2)
    worker.stop()
    await running
    finished, released = await app.backend.get(short), await app.backend.get(long)
    assert finished and finished.status is TaskStatus.DONE
    assert released and released.status is TaskStatus.QUEUED and released.attempts == 0
    assert await app.backend.workers() == []


async def test_a_task_can_stop_its_worker_and_recycling_stops_after_n(app: App) -> None:
    @app.task
    async def last(context: Context) -> None:
        context.stop_worker()

    await last.push()
    worker = Worker(app, fast())
    await asyncio.wait_for(worker.run(), 5)
    assert worker.stop_reason == "a task asked the worker to stop"

    @app.task(queue="bulk")
    async def noop() -> None:
        pass

    await noop.push_many([{}] * 10)
    recycled = Worker(app, fast(max_tasks=3, concurrency=1, queues=("bulk",)))
    await asyncio.wait_for(recycled.run(), 5)
    assert recycled.processed == 3
    assert recycled.stop_reason == "recycling after 3 tasks"


async def test_a_worker_that_lost_its_lease_cannot_overwrite_the_result(app: App) -> None:
    release = asyncio.Event()

    @app.task
    async def stuck() -> None:
        await release.wait()

    task_id = (await stuck.push()).id
    stalled = Worker(app, fast(lease_seconds=0.2, reap_interval=60))
    stalled._heartbeats.due = float("inf")  # a stalled loop: no heartbeats, no reaping
    running = asyncio.create_task(stalled.run())
    await until(lambda: stalled.in_flight == 1)
    await asyncio.sleep(0.3)
    report = await app.backend.reap(worker_timeout=60)
    assert report.requeued == (task_id,)
    [claim] = await app.backend.claim(["default"], "rescuer", 1, 30)
    release.set()
    await until(lambda: stalled.processed == 1)
    stalled.stop()
    await running
    task = await app.backend.get(task_id)
    assert task is not None and task.status is TaskStatus.RUNNING
    assert task.worker_id == "rescuer"
    await app.backend.ack([claim.lease])


async def test_several_workers_share_one_process(app: App) -> None:
    @app.task(queue="a")
    async def on_a() -> None:
        pass

    @app.task(queue="b")
    async def on_b() -> None:
        pass

    await on_a.push_many([{}] * 5)
    await on_b.push_many([{}] * 5)
    workers = [Worker(app, fast(queues=("a",))), Worker(app, fast(queues=("b",)))]
    running = asyncio.create_task(run_workers(workers))
    await until(lambda: sum(w.processed for w in workers) == 10)
    workers[0].stop()  # one stopping stops the process's others
    await asyncio.wait_for(running, 5)
    assert [w.processed for w in workers] == [5, 5]


async def test_recycling_above_a_memory_limit_drains_and_stops(app: App) -> None:
    @app.task
    async def noop() -> None:
        pass

    await noop.push_many([{}] * 5)
    worker = Worker(app, fast(max_rss_mb=1, concurrency=1))  # any process is above 1 MiB
    await asyncio.wait_for(worker.run(), 5)
    assert worker.processed == 1
    assert worker.stop_reason is not None and "MiB resident memory" in worker.stop_reason


async def test_a_handler_that_swallows_its_timeout_fails_saying_so(app: App) -> None:
    @app.task(timeout=0.05, retry=RetryPolicy(max_attempts=1))
    async def stubborn() -> None:
        try:  # noqa: SIM105  # written out: the hostile handler under test
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            pass  # the bug under test: cancellation swallowed, the handler returns

    @app.task(timeout=0.05, retry=RetryPolicy(max_attempts=1))
    async def stubborn_then_raises() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            raise ValueError("cleaning up went wrong") from None

    ids = [(await stubborn.push()).id, (await stubborn_then_raises.push()).id]
    await drain(app)
    for task_id in ids:
        task = await app.backend.get(task_id)
        assert task is not None and task.status is TaskStatus.DEAD
        assert task.last_error is not None
        assert task.last_error.startswith("TimeoutError: the handler ignored its cancellation")


async def test_a_plain_task_past_its_timeout_keeps_its_slot_and_wrongs_no_other_task(
    app: App,
) -> None:
    returned = threading.Event()

    @app.task(timeout=0.1, retry=RetryPolicy(max_attempts=1))
    def overruns() -> None:
        time.sleep(0.6)  # a thread cannot be interrupted: it runs on past the timeout
        returned.set()

    ran_after: list[bool] = []

    @app.task(timeout=0.3, retry=RetryPolicy(max_attempts=1))
    def quick() -> None:
        ran_after.append(returned.is_set())

    first = (await overruns.push()).id
    later = [h.id for h in await quick.push_many([{}] * 3)]
    worker = Worker(app, fast(concurrency=1, prefetch=0))
    running = asyncio.create_task(worker.run())
    await until(lambda: worker.processed == 4)
    worker.stop()
    await running
    timed_out = await app.backend.get(first)
    assert timed_out is not None and timed_out.status is TaskStatus.DEAD
    assert timed_out.last_error == "TimeoutError: the attempt took longer than the task's timeout"
    for task_id in later:  # they waited for the one thread, and were not charged for it
        task = await app.backend.get(task_id)
        assert task is not None and task.status is TaskStatus.DONE and task.attempts == 1
    assert ran_after == [True, True, True]


async def test_a_stop_during_a_heartbeat_starts_nothing_claimed_ahead(app: App) -> None:
    started: list[int] = []

    @app.task
    async def short(n: int) -> None:
        started.append(n)
        await asyncio.sleep(0.05)

    await short.push_many([{"n": i} for i in range(20)])
    worker = Worker(app, fast(concurrency=2, prefetch=10, lease_seconds=0.6))
    heartbeat = worker.backend.heartbeat
    in_heartbeat = asyncio.Event()
    let_go = asyncio.Event()

    async def slow_heartbeat(*args: object, **kwargs: object) -> list[str]:
        if worker._claimed and worker._running and not in_heartbeat.is_set():
            in_heartbeat.set()  # tasks running and tasks held
            await let_go.wait()  # the running two finish meanwhile: their slots free up
        return await heartbeat(*args, **kwargs)  # type: ignore[arg-type]

    worker.backend.heartbeat = slow_heartbeat  # type: ignore[method-assign]
    running = asyncio.create_task(worker.run())
    await asyncio.wait_for(in_heartbeat.wait(), 5)
    await until(lambda: len(worker._running) == 0)
    worker.stop()
    before_the_stop = len(started)
    let_go.set()
    await running
    assert len(started) == before_the_stop
    queued = await app.backend.list_tasks(statuses=[TaskStatus.QUEUED])
    assert len(queued) == 20 - before_the_stop
    assert all(task.attempts == 0 for task in queued)  # released, never charged
