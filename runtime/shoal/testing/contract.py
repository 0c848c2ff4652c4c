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
import dataclasses
import importlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from shoal.backends import Backend, OnConflict, open_backend
from shoal.core.errors import (
    IdempotencyConflict,
    InvalidTask,
    LeaseLost,
    SchemaMissing,
    TaskNotFound,
)
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

CASE_MODULES: tuple[str, ...] = (
    "shoal.testing.contract",
    "shoal.testing.contract_bulk",
    "shoal.testing.contract_lifecycle",
    "shoal.testing.contract_retention",
    "shoal.testing.contract_abort",
    "shoal.testing.contract_results",
)
"""The modules whose ``test_*`` functions make up the contract, core primitives first."""


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


async def test_push_stores_every_field(backend: Backend) -> None:
    task = new_task(priority=5, key="order-1", payload=b"\x00\xffraw")
    [task_id] = await backend.push([task])
    stored = await backend.get(task_id)
    assert stored is not None
    assert (stored.id, stored.queue, stored.name) == (task.id, "default", "tasks.work")
    assert stored.payload == b"\x00\xffraw"
    assert stored.status is TaskStatus.QUEUED
    assert (stored.priority, stored.attempts, stored.max_attempts) == (5, 0, 3)
    assert stored.idempotency_key == "order-1"
    assert dict(stored.metadata) == {"origin": "contract"}
    assert abs((stored.run_at - task.run_at).total_seconds()) < 0.01
    assert await backend.get(new_id()) is None


@pytest.mark.parametrize(
    ("field", "change", "says"),
    [
        pytest.param("queue", {"queue": "de\x00fault"}, "NUL", id="queue"),
        pytest.param("name", {"name": "tasks.\x00work"}, "NUL", id="name"),
        pytest.param("id", {"id": f"{new_id()}\x00"}, "NUL", id="id"),
        pytest.param("idempotency_key", {"idempotency_key": "order\x00-1"}, "NUL", id="key"),
        pytest.param(
            "metadata",
            {"metadata": {"ori\x00gin": "contract"}},
            "metadata key 'ori\\x00gin'",
            id="metadata-key",
        ),
        pytest.param(
            "metadata",
            {"metadata": {"origin": "con\x00tract"}},
            "metadata value of 'origin'",
            id="metadata-value",
        ),
        pytest.param("name", {"name": "tasks.\ud800work"}, "not valid Unicode", id="surrogate"),
    ],
)
async def test_text_no_backend_can_store_is_refused_before_any_is_touched(
    backend: Backend, field: str, change: dict[str, Any], says: str
) -> None:
    good, bad = new_task(), dataclasses.replace(new_task(), **change)
    with pytest.raises(InvalidTask) as caught:
        await backend.push([good, bad])
    assert (caught.value.task_id, caught.value.field) == (bad.id, field)
    assert says in str(caught.value)
    assert await backend.get(good.id) is None
    assert await backend.queues() == []


async def test_push_many_keeps_order(backend: Backend) -> None:
    tasks = [new_task() for _ in range(50)]
    assert await backend.push(tasks) == [t.id for t in tasks]
    assert (await backend.stats(["default"]))["default"].ready == 50


async def test_idempotency_conflict_names_keys_and_stores_nothing(backend: Backend) -> None:
    await backend.push([new_task(key="a"), new_task(key="b")])
    batch = [new_task(key="c"), new_task(key="a"), new_task(key="b"), new_task()]
    with pytest.raises(IdempotencyConflict) as caught:
        await backend.push(batch)
    assert sorted(caught.value.conflicting_keys) == ["a", "b"]
    assert caught.value.total == 4
    assert (await backend.stats(["default"]))["default"].ready == 2
    assert await backend.get(batch[0].id) is None


async def test_duplicate_key_within_one_batch_conflicts(backend: Backend) -> None:
    with pytest.raises(IdempotencyConflict) as caught:
        await backend.push([new_task(key="x"), new_task(key="x")])
    assert caught.value.conflicting_keys == ("x",)
    assert (await backend.stats(["default"]))["default"].ready == 0


async def test_a_conflict_names_held_and_repeated_keys_together(backend: Backend) -> None:
    await backend.push([new_task(key="a")])
    with pytest.raises(IdempotencyConflict) as caught:
        await backend.push([new_task(key="x"), new_task(key="x"), new_task(key="a")])
    assert caught.value.conflicting_keys == ("a", "x")
    assert (await backend.stats(["default"]))["default"].ready == 1


async def test_skip_returns_the_existing_id(backend: Backend) -> None:
    [first] = await backend.push([new_task(key="k")])
    fresh = new_task()
    ids = await backend.push([new_task(key="k"), fresh], on_conflict=OnConflict.SKIP)
    assert ids == [first, fresh.id]


async def test_skip_within_one_batch_returns_the_first_taker(backend: Backend) -> None:
    [held] = await backend.push([new_task(key="held")])
    keys = [("default", "k"), ("default", "held"), ("default", "k"), ("b", "k"), ("b", "held")]
    batch = [new_task(queue, key=key) for queue, key in keys]
    ids = await backend.push(batch, on_conflict=OnConflict.SKIP)
    assert ids == [batch[0].id, held, batch[0].id, batch[3].id, batch[4].id]
    assert {t.id for t in await backend.list_tasks()} == {held, *(batch[i].id for i in (0, 3, 4))}


async def test_a_conflict_names_the_queue_of_the_conflicting_task(backend: Backend) -> None:
    await backend.push([new_task("b", key="k")])
    with pytest.raises(IdempotencyConflict) as caught:
        await backend.push([new_task("a", key="k"), new_task("b", key="k")])
    assert (caught.value.queue, caught.value.conflicting_keys) == ("b", ("k",))
    assert (await backend.stats(["a"]))["a"].ready == 0


async def test_keys_are_per_queue_and_freed_when_finished(backend: Backend) -> None:
    await backend.push([new_task("a", key="k"), new_task("b", key="k")])
    [claim] = await backend.claim(["a"], "w1", 1, 30)
    await backend.ack([claim.lease])
    await backend.push([new_task("a", key="k")])


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


async def test_admin_list_retry_cancel_purge(backend: Backend) -> None:
    await backend.push([new_task(), new_task(), new_task(delay=600)])
    running, finished = await backend.claim(["default"], "w1", 2, 30)
    delayed = next(t for t in await backend.list_tasks(queue="default") if t.status == "queued")
    await backend.fail([Failure(running.lease, "bad input", None)])
    await backend.ack([finished.lease])

    listed = await backend.list_tasks(queue="default", statuses=[TaskStatus.DEAD])
    assert [t.id for t in listed] == [running.task.id]
    assert len(await backend.list_tasks(limit=2)) == 2

    assert await backend.retry(running.task.id)
    revived = await backend.get(running.task.id)
    assert revived is not None and revived.status is TaskStatus.QUEUED
    assert revived.attempts == 0
    assert not await backend.retry(finished.task.id)

    assert await backend.cancel(delayed.id)
    cancelled = await backend.get(delayed.id)
    assert cancelled is not None and cancelled.status is TaskStatus.CANCELLED
    assert not await backend.cancel(finished.task.id)  # finished: nothing to cancel

    assert await backend.purge(queue="default", statuses=[TaskStatus.DONE]) == 1
    assert await backend.get(finished.task.id) is None
    assert await backend.purge(queue=None, statuses=[TaskStatus.CANCELLED]) == 1
    with pytest.raises(TaskNotFound):
        await backend.retry(new_id())
    with pytest.raises(TaskNotFound):
        await backend.cancel(new_id())


async def test_listing_pages_newest_first_below_a_cursor(backend: Backend) -> None:
    tasks = [new_task("a" if n % 2 else "b") for n in range(7)]
    await backend.push(tasks)
    newest_first = [t.id for t in reversed(tasks)]
    pages, cursor = [], None
    while True:
        page = await backend.list_tasks(before=cursor, limit=3)
        if not page:
            break
        pages.append([t.id for t in page])
        cursor = page[-1].id
    assert pages == [newest_first[:3], newest_first[3:6], newest_first[6:]]
    assert [t.id for t in await backend.list_tasks(before=newest_first[2], limit=2)] == (
        newest_first[3:5]
    )
    in_a = [t.id for t in reversed(tasks) if t.queue == "a"]
    first = await backend.list_tasks(queue="a", limit=2)
    rest = await backend.list_tasks(queue="a", before=first[-1].id)
    assert [t.id for t in first + rest] == in_a
    assert await backend.list_tasks(limit=0) == []


async def test_listing_filters_by_status_name_and_creation_time(backend: Backend) -> None:
    early = [dataclasses.replace(new_task(), name=n) for n in ("mail.send", "pdf.render")]
    await backend.push(early)
    await asyncio.sleep(0.05)
    middle = utcnow()
    await asyncio.sleep(0.05)
    late = [dataclasses.replace(new_task(q), name="mail.send") for q in ("default", "other")]
    await backend.push(late)
    [claim] = await backend.claim(["default"], "w1", 1, 30)  # the oldest: early[0]
    await backend.fail([Failure(claim.lease, "bounced", None)])

    def ids(tasks: list[Any]) -> list[str]:
        return [t.id for t in tasks]

    assert ids(await backend.list_tasks(name="mail.send")) == [late[1].id, late[0].id, early[0].id]
    assert ids(await backend.list_tasks(name="mail.send", statuses=[TaskStatus.DEAD])) == [
        early[0].id
    ]
    assert ids(await backend.list_tasks(name="mail.send", queue="other")) == [late[1].id]
    assert ids(await backend.list_tasks(since=middle)) == [late[1].id, late[0].id]
    assert ids(await backend.list_tasks(until=middle)) == [early[1].id, early[0].id]
    assert ids(
        await backend.list_tasks(
            until=middle, statuses=[TaskStatus.QUEUED, TaskStatus.DEAD], name="pdf.render"
        )
    ) == [early[1].id]
    assert ids(await backend.list_tasks(since=middle, queue="default", before=late[1].id)) == [
        late[0].id
    ]
    assert await backend.list_tasks(name="nothing.named.so") == []


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
