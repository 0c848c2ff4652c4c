"""Contract cases of pushing: every field stored, text no backend can store refused, batches
in order, and idempotency keys (conflicts that name their keys and queue, skips that return
the first taker, keys per queue and freed when a task finishes).

Part of :class:`shoal.testing.contract.BackendContract` (listed in ``CASE_MODULES``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from shoal.backends import Backend, OnConflict
from shoal.core.errors import IdempotencyConflict, InvalidTask
from shoal.core.ids import new_id
from shoal.core.models import TaskStatus
from shoal.testing.contract import new_task


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
