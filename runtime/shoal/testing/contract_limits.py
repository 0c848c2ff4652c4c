"""Contract cases for limits: rate buckets and concurrency keys, enforced inside ``claim``.

The rule is :mod:`shoal.backends.shared.limiting`'s: limited tasks are taken only while
their bucket holds a token and their key a free slot, tasks behind held-back ones still
flow, buckets and running counts are shared by every process on the store, and ``stats``
says how many ready tasks the limits hold back. Rates here are slow (tokens come back every
many seconds) so that a loaded machine cannot refill a bucket between two calls.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

from shoal.backends import Backend, open_backend
from shoal.core.limits import Rate, TaskLimits
from shoal.core.models import Failure, NewTask, TaskStatus
from shoal.testing.contract import new_task

SLOW = Rate(200, 3600.0)
"""A bucket of 10 tokens, one back every 18 seconds."""


def limited(
    queue: str = "default",
    *,
    rate: Rate | None = None,
    rate_key: str = "task:tasks.work",
    key: str | None = None,
    limit: int = 2,
    priority: int = 0,
) -> NewTask:
    limits = TaskLimits(rate_key if rate else None, rate, key, limit if key is not None else None)
    return dataclasses.replace(new_task(queue, priority=priority), limits=limits)


async def test_push_stores_limits(backend: Backend) -> None:
    task = limited(rate=SLOW, key="customer-7", limit=3)
    [task_id] = await backend.push([task])
    stored = await backend.get(task_id)
    assert stored is not None
    assert stored.limits == TaskLimits("task:tasks.work", SLOW, "customer-7", 3)
    [plain] = await backend.push([new_task()])
    stored_plain = await backend.get(plain)
    assert stored_plain is not None and not stored_plain.limits.limited


async def test_rate_limit_takes_at_most_the_bucket(backend: Backend) -> None:
    await backend.push([limited(rate=SLOW) for _ in range(25)])
    first = await backend.claim(["default"], "w1", 50, 30)
    assert len(first) == SLOW.burst == 10
    assert await backend.claim(["default"], "w1", 50, 30) == []


async def test_rate_bucket_refills_with_time(backend: Backend) -> None:
    rate = Rate(1, 1.0)  # one token, back after a second
    await backend.push([limited(rate=rate) for _ in range(3)])
    assert len(await backend.claim(["default"], "w1", 5, 30)) == 1
    started = time.monotonic()
    while not (claims := await backend.claim(["default"], "w1", 5, 30)):
        assert time.monotonic() - started < 20, "the bucket never refilled"
        await asyncio.sleep(0.1)
    assert len(claims) == 1
    assert time.monotonic() - started > 0.5


async def test_held_back_tasks_let_others_through(backend: Backend) -> None:
    await backend.push([limited(rate=Rate(1, 3600.0), priority=5) for _ in range(20)])
    free = [new_task(priority=0) for _ in range(5)]
    await backend.push(free)
    claims = await backend.claim(["default"], "w1", 10, 30)
    assert len(claims) == 6
    assert {c.task.id for c in claims} >= {t.id for t in free}
    assert claims[0].task.limits.limited  # still claim order: the higher priority first


async def test_buckets_are_per_queue_and_rate_key(backend: Backend) -> None:
    one = Rate(1, 3600.0)
    await backend.push(
        [limited("a", rate=one) for _ in range(3)]
        + [limited("b", rate=one) for _ in range(3)]
        + [limited("a", rate=one, rate_key="queue") for _ in range(3)]
    )
    claims = await backend.claim(["a", "b"], "w1", 10, 30)
    assert sorted((c.task.queue, c.task.limits.rate_key) for c in claims) == [
        ("a", "queue"),
        ("a", "task:tasks.work"),
        ("b", "task:tasks.work"),
    ]


async def test_rate_bucket_is_shared_by_every_process(backend: Backend, backend_url: str) -> None:
    await backend.push([limited(rate=SLOW) for _ in range(30)])
    async with open_backend(backend_url) as other:
        claims = await asyncio.gather(
            *(b.claim(["default"], f"w{i}", 4, 30) for i, b in enumerate([backend, other] * 4))
        )
    assert sum(len(c) for c in claims) == SLOW.burst


async def test_concurrency_key_caps_running_tasks(backend: Backend) -> None:
    await backend.push(
        [limited(key="a", limit=2) for _ in range(5)]
        + [limited(key="b", limit=2) for _ in range(5)]
    )
    claims = await backend.claim(["default"], "w1", 10, 30)
    assert sorted(str(c.task.limits.concurrency_key) for c in claims) == ["a", "a", "b", "b"]
    assert await backend.claim(["default"], "w1", 10, 30) == []
    a = [c for c in claims if c.task.limits.concurrency_key == "a"]
    await backend.ack([a[0].lease])
    await backend.fail([Failure(a[1].lease, "boom", retry_at=None)])
    again = await backend.claim(["default"], "w1", 10, 30)
    assert [c.task.limits.concurrency_key for c in again] == ["a", "a"]


async def test_released_tasks_free_their_key(backend: Backend) -> None:
    await backend.push([limited(key="a", limit=1) for _ in range(2)])
    [claim] = await backend.claim(["default"], "w1", 5, 30)
    await backend.release([claim.lease])
    [again] = await backend.claim(["default"], "w1", 5, 30)
    assert again.task.id == claim.task.id


async def test_concurrency_key_holds_across_processes(backend: Backend, backend_url: str) -> None:
    await backend.push([limited(key="k", limit=2) for _ in range(20)])
    async with open_backend(backend_url) as other:
        claims = await asyncio.gather(
            *(b.claim(["default"], f"w{i}", 3, 30) for i, b in enumerate([backend, other] * 4))
        )
    assert sum(len(c) for c in claims) == 2


async def test_stats_say_what_limits_hold_back(backend: Backend) -> None:
    await backend.push(
        [limited(key="a", limit=2) for _ in range(5)]
        + [limited("r", rate=SLOW) for _ in range(14)]
        + [new_task("r") for _ in range(3)]
    )
    stats = await backend.stats(["default", "r", "empty"])
    assert (stats["default"].ready, stats["default"].held_back) == (5, 3)
    assert (stats["r"].ready, stats["r"].held_back, stats["r"].runnable) == (17, 4, 13)
    assert stats["empty"].held_back == 0
    await backend.claim(["default"], "w1", 10, 30)
    after = (await backend.stats(["default"]))["default"]
    assert (after.ready, after.running, after.held_back) == (3, 2, 3)


async def test_limits_leave_unlimited_claims_alone(backend: Backend) -> None:
    await backend.push([new_task() for _ in range(30)])
    claims = await backend.claim(["default"], "w1", 25, 30)
    assert len(claims) == 25
    assert all(c.task.status is TaskStatus.RUNNING for c in claims)
    assert (await backend.stats(["default"]))["default"].held_back == 0


async def test_cancelled_running_tasks_free_their_key(backend: Backend) -> None:
    await backend.push([limited(key="a", limit=1) for _ in range(2)])
    [claim] = await backend.claim(["default"], "w1", 5, 30)
    assert await backend.cancel(claim.task.id, by="ops")
    await backend.cancel_running([claim.lease])
    [again] = await backend.claim(["default"], "w1", 5, 30)
    assert again.task.id != claim.task.id


async def test_repair_tools_keep_limited_tasks_counted(backend: Backend) -> None:
    tasks = [limited(key="a", limit=1) for _ in range(3)]
    await backend.push(tasks)
    assert all([await backend.cancel(t.id) for t in tasks[:2]])
    assert (await backend.stats(["default"]))["default"].held_back == 0
    assert await backend.retry_many([tasks[0].id]) == 1
    assert (await backend.stats(["default"]))["default"].held_back == 1
    assert await backend.purge_tasks([tasks[1].id]) == 1
    [claim] = await backend.claim(["default"], "w1", 5, 30)
    await backend.ack([claim.lease])
    assert len(await backend.claim(["default"], "w1", 5, 30)) == 1
