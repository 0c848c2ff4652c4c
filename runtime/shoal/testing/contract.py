"""The backend contract suite: what every backend, built in or your own, must pass unchanged.

Subclass :class:`BackendContract` in a test module and give it a ``backend_url`` fixture
naming a fresh, empty store for each test::

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend_url(self, tmp_path: Path) -> str:
            return f"mine:///{tmp_path}/tasks"

The cases need pytest and pytest-asyncio in auto mode (``asyncio_mode = "auto"``); shoal
itself never imports pytest. ``docs/backends.md`` says what each case holds a backend to.
Here, the suite runs over every built-in backend (``tests/integration/test_builtin_contract.py``)
and over the example plugin backend (``tests/plugin_backend/``).
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from shoal.backends import Backend, open_backend
from shoal.core.errors import LeaseLost, SchemaMissing
from shoal.core.ids import new_id
from shoal.core.models import (
    Failure,
    HealthStatus,
    HeartbeatReply,
    Lease,
    NewTask,
    TaskStatus,
    WorkerInfo,
    utcnow,
)
from shoal.testing import CASE_MODULES


class BackendContract:
    """Every case of the contract, for the store a subclass names by a ``backend_url`` fixture.

    ``backend_url`` must name a fresh, empty store for each test: the cases open more than
    one backend on it where they need another process's view. ``backend``, the one they
    mostly use, is opened from it and set up; a subclass may override it.

    The cases are the ``test_*`` functions of the modules in :data:`CASE_MODULES`, copied
    onto each subclass when it is defined, so a case is a plain function wherever it sits:
    this module holds the core primitives, and each capability's cases sit in a module of
    their own beside it.
    """

    @pytest.fixture
    async def backend(self, backend_url: str) -> AsyncIterator[Backend]:
        async with open_backend(backend_url) as backend:
            await backend.setup()
            yield backend

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        for module_name in CASE_MODULES:
            for name, case in vars(importlib.import_module(module_name)).items():
                if name.startswith("test_") and callable(case):
                    setattr(cls, name, staticmethod(case))


def new_task(
    queue: str = "default",
    *,
    priority: int = 0,
    delay: float = 0.0,
    key: str | None = None,
    max_attempts: int = 3,
    payload: bytes = b'{"n": 1}',
) -> NewTask:
    return NewTask(
        id=new_id(),
        queue=queue,
        name="tasks.work",
        payload=payload,
        run_at=utcnow() + timedelta(seconds=delay),
        max_attempts=max_attempts,
        priority=priority,
        idempotency_key=key,
        metadata={"origin": "contract"},
    )


def worker(worker_id: str = "w1", in_flight: int = 0) -> WorkerInfo:
    return WorkerInfo(
        id=worker_id,
        host="test-host",
        pid=1,
        queues=("default",),
        concurrency=4,
        in_flight=in_flight,
    )


async def test_claim_order_is_priority_then_fifo(backend: Backend) -> None:
    low = [new_task(priority=0) for _ in range(3)]
    high = [new_task(priority=10) for _ in range(2)]
    await backend.push(low[:2])
    await backend.push(high)
    await backend.push(low[2:])
    claims = await backend.claim(["default"], "w1", 10, 30)
    assert [c.task.id for c in claims] == [t.id for t in high + low]


async def test_claim_honours_limit_queue_and_due_time(backend: Backend) -> None:
    due = [new_task("a") for _ in range(3)]
    await backend.push([*due, new_task("a", delay=3600), new_task("b")])
    first = await backend.claim(["a"], "w1", 2, 30)
    second = await backend.claim(["a"], "w1", 5, 30)
    assert len(first) == 2 and len(second) == 1
    assert {c.task.id for c in first + second} == {t.id for t in due}
    for claim in first + second:
        assert claim.task.status is TaskStatus.RUNNING
        assert claim.task.attempts == 1 == claim.lease.attempt
        assert claim.task.worker_id == "w1"


async def test_concurrent_claims_never_share_a_task(backend: Backend) -> None:
    await backend.push([new_task() for _ in range(40)])
    batches = await asyncio.gather(*(backend.claim(["default"], f"w{i}", 7, 30) for i in range(8)))
    ids = [c.task.id for batch in batches for c in batch]
    assert len(ids) == len(set(ids)) == 40


async def test_fail_and_heartbeat_apply_valid_leases_and_name_the_lost(backend: Backend) -> None:
    await backend.push([new_task() for _ in range(3)])
    kept, forged_claim, failed = await backend.claim(["default"], "w1", 3, 30)
    forged = Lease(forged_claim.task.id, "not-the-token", forged_claim.lease.attempt)
    reply = await backend.heartbeat(worker(), [forged, kept.lease], 30)
    assert reply == HeartbeatReply(lost=(forged.task_id,))
    with pytest.raises(LeaseLost) as caught:
        await backend.fail([Failure(forged, "x", None), Failure(failed.lease, "fatal", None)])
    assert caught.value.task_ids == (forged.task_id,)
    dead = await backend.get(failed.task.id)
    assert dead is not None and dead.status is TaskStatus.DEAD
    untouched = await backend.get(forged.task_id)
    assert untouched is not None and untouched.status is TaskStatus.RUNNING


async def test_ack_finishes_and_stale_leases_are_rejected(backend: Backend) -> None:
    await backend.push([new_task(), new_task()])
    first, second = await backend.claim(["default"], "w1", 2, 30)
    await backend.ack([first.lease])
    done = await backend.get(first.task.id)
    assert done is not None and done.status is TaskStatus.DONE
    assert done.finished_at is not None
    forged = Lease(second.task.id, "not-the-token", second.lease.attempt)
    with pytest.raises(LeaseLost) as caught:
        await backend.ack([forged])
    assert caught.value.task_ids == (second.task.id,)
    with pytest.raises(LeaseLost) as caught:
        await backend.ack([second.lease, first.lease])
    assert caught.value.task_ids == (first.task.id,)
    again = await backend.get(second.task.id)
    assert again is not None and again.status is TaskStatus.DONE


async def test_fail_retries_later_or_ends_dead(backend: Backend) -> None:
    await backend.push([new_task(), new_task()])
    retried, killed = await backend.claim(["default"], "w1", 2, 30)
    soon = utcnow() + timedelta(seconds=0.3)
    await backend.fail([Failure(retried.lease, "boom", soon), Failure(killed.lease, "fatal", None)])
    waiting = await backend.get(retried.task.id)
    dead = await backend.get(killed.task.id)
    assert waiting is not None and waiting.status is TaskStatus.RETRYING
    assert waiting.last_error == "boom"
    assert dead is not None and dead.status is TaskStatus.DEAD and dead.last_error == "fatal"
    stats = (await backend.stats(["default"]))["default"]
    assert (stats.ready, stats.scheduled, stats.dead) == (0, 1, 1)
    assert await backend.claim(["default"], "w1", 5, 30) == []
    await asyncio.sleep(0.4)
    [again] = await backend.claim(["default"], "w1", 5, 30)
    assert again.task.id == retried.task.id and again.task.attempts == 2
    with pytest.raises(LeaseLost):
        await backend.fail([Failure(retried.lease, "late", None)])


async def test_release_does_not_charge_an_attempt(backend: Backend) -> None:
    await backend.push([new_task()])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.release([claim.lease])
    released = await backend.get(claim.task.id)
    assert released is not None and released.status is TaskStatus.QUEUED
    assert released.attempts == 0
    [again] = await backend.claim(["default"], "w2", 1, 30)
    assert again.task.attempts == 1
    await backend.release([claim.lease])  # stale: ignored, the task stays with w2
    still = await backend.get(claim.task.id)
    assert still is not None and still.status is TaskStatus.RUNNING


async def test_heartbeat_keeps_leases_and_registers_the_worker(backend: Backend) -> None:
    await backend.push([new_task(), new_task()])
    kept, lost = await backend.claim(["default"], "w1", 2, 0.3)
    assert await backend.heartbeat(worker(in_flight=2), [kept.lease], 30) == HeartbeatReply()
    await asyncio.sleep(0.5)
    report = await backend.reap(worker_timeout=60)
    assert report.requeued == (lost.task.id,)
    reply = await backend.heartbeat(worker(in_flight=2), [kept.lease, lost.lease], 30)
    assert reply.lost == (lost.task.id,)
    [registered] = await backend.workers()
    assert (registered.id, registered.host, registered.in_flight) == ("w1", "test-host", 2)
    assert registered.queues == ("default",)
    await backend.deregister("w1")
    assert await backend.workers() == []


async def test_reap_requeues_then_ends_dead_when_attempts_are_spent(backend: Backend) -> None:
    await backend.push([new_task(max_attempts=2)])
    [first] = await backend.claim(["default"], "w1", 1, 0.1)
    await asyncio.sleep(0.2)
    assert (await backend.reap(worker_timeout=60)).requeued == (first.task.id,)
    with pytest.raises(LeaseLost):
        await backend.ack([first.lease])
    [second] = await backend.claim(["default"], "w2", 1, 0.1)
    assert second.task.attempts == 2 and second.task.lease_expirations == 1
    await asyncio.sleep(0.2)
    assert (await backend.reap(worker_timeout=60)).dead == (first.task.id,)
    dead = await backend.get(first.task.id)
    assert dead is not None and dead.status is TaskStatus.DEAD
    assert dead.last_error == "lease expired 2 times: the worker running it died or stalled"
    assert (dead.attempts, dead.lease_expirations, dead.worker_id) == (2, 2, None)
    assert dead.finished_at is not None


async def test_reap_requeues_with_the_attempt_charged_and_no_reason(backend: Backend) -> None:
    await backend.push([new_task(max_attempts=3)])
    [claim] = await backend.claim(["default"], "w1", 1, 0.1)
    await asyncio.sleep(0.2)
    report = await backend.reap(worker_timeout=60)
    assert (report.requeued, report.dead) == ((claim.task.id,), ())
    requeued = await backend.get(claim.task.id)
    assert requeued is not None and requeued.status is TaskStatus.QUEUED
    assert (requeued.attempts, requeued.lease_expirations) == (1, 1)
    assert (requeued.last_error, requeued.worker_id, requeued.finished_at) == (None, None, None)
    assert (await backend.heartbeat(worker(), [claim.lease], 30)).lost == (claim.task.id,)


async def test_a_task_reaped_dead_frees_its_idempotency_key(backend: Backend) -> None:
    await backend.push([new_task(key="k", max_attempts=1)])
    [claim] = await backend.claim(["default"], "w1", 1, 0.1)
    await asyncio.sleep(0.2)
    assert (await backend.reap(worker_timeout=60)).dead == (claim.task.id,)
    fresh = new_task(key="k")
    assert await backend.push([fresh]) == [fresh.id]


async def test_reap_forgets_silent_workers(backend: Backend) -> None:
    await backend.heartbeat(worker("gone"), [], 30)
    await asyncio.sleep(0.3)
    await backend.heartbeat(worker("alive"), [], 30)
    await backend.reap(worker_timeout=0.2)
    assert [w.id for w in await backend.workers()] == ["alive"]


async def test_stats_cover_many_queues_at_once(backend: Backend) -> None:
    await backend.push([new_task("a") for _ in range(3)])
    await backend.push([new_task("a", delay=600), new_task("b")])
    await backend.claim(["a"], "w1", 1, 30)
    await asyncio.sleep(0.05)
    stats = await backend.stats(["a", "b", "empty"])
    a, b, empty = stats["a"], stats["b"], stats["empty"]
    assert (a.ready, a.scheduled, a.running, a.dead) == (2, 1, 1, 0)
    assert a.oldest_ready_age is not None and a.oldest_ready_age >= 0.04
    assert (b.ready, b.running) == (1, 0)
    assert (empty.ready, empty.scheduled, empty.running, empty.dead) == (0, 0, 0, 0)
    assert empty.oldest_ready_age is None
    assert await backend.queues() == ["a", "b"]


async def test_wait_for_work_wakes_on_push_and_times_out(backend: Backend) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    await backend.wait_for_work(["default"], 0.2)
    assert loop.time() - started >= 0.15

    waiter = asyncio.create_task(backend.wait_for_work(["default"], 10))
    await asyncio.sleep(0.1)
    started = loop.time()
    await backend.push([new_task()])
    await asyncio.wait_for(waiter, 2)
    assert loop.time() - started < 1.5


async def test_a_push_between_an_empty_claim_and_the_wait_is_not_lost(
    backend: Backend, backend_url: str
) -> None:
    """A worker claims, finds nothing, and only then waits: a push that lands in between,
    through this instance or through another on the same store (another process; memory://
    has no other), must end that wait at once, not after the wait's whole timeout."""
    loop = asyncio.get_running_loop()
    others = [] if backend_url.startswith("memory:") else [open_backend(backend_url)]
    for other in others:
        await other.open()
    try:
        await backend.wait_for_work(["default"], 0.3)  # an idle worker has waited before
        for producer in [backend, *others]:
            assert await backend.claim(["default"], "w1", 10, 30) == []
            await producer.push([new_task()])
            await asyncio.sleep(0.2)  # the hint lands before the worker waits again
            started = loop.time()
            await asyncio.wait_for(backend.wait_for_work(["default"], 10), 5)
            assert loop.time() - started < 0.25, f"a push through {producer.url} was lost"
            [claim] = await backend.claim(["default"], "w1", 10, 30)
            await backend.ack([claim.lease])
    finally:
        for other in others:
            await other.close()


async def test_schema_verifies_after_setup(backend: Backend) -> None:
    await backend.verify_schema()
    await backend.setup()  # idempotent
    await backend.verify_schema()


async def test_health_after_setup_is_ok(backend: Backend) -> None:
    health = await backend.health()
    assert health.status is HealthStatus.OK and health.warnings == ()
    assert all(isinstance(v, str) for v in health.details.values())
    # Only memory:// forgets what it holds when its "server" (the process) restarts.
    assert health.durable is not backend.url.startswith("memory:")


async def test_health_before_setup_names_the_migration(backend_url: str) -> None:
    async with open_backend(backend_url) as fresh:
        if backend_url.startswith("memory:"):  # nothing to set up: serves at once
            assert (await fresh.health()).status is HealthStatus.OK
            return
        with pytest.raises(SchemaMissing, match="shoal migrate"):
            await fresh.health()
