"""The rules every backend shares (``shoal.backends.shared``), as pure functions.

The contract suite pins what the backends do with them; these pin the decisions alone.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.backends.base import OnConflict
from shoal.backends.shared.fencing import lost_leases, refuse_lost
from shoal.backends.shared.idempotency import conflict, resolve
from shoal.backends.shared.reaping import Expired, judge, report_verdicts
from shoal.backends.shared.storable import check_storable
from shoal.core.errors import IdempotencyConflict, InvalidTask, LeaseLost
from shoal.core.models import Lease, NewTask, TaskStatus


def task(task_id: str, queue: str = "q", key: str | None = None, **metadata: str) -> NewTask:
    return NewTask(
        id=task_id,
        queue=queue,
        name="tasks.work",
        payload=b"{}",
        run_at=datetime(2026, 1, 1, tzinfo=UTC),
        max_attempts=3,
        idempotency_key=key,
        metadata=metadata,
    )


def test_an_expired_lease_requeues_until_the_attempts_are_spent() -> None:
    verdicts = judge(
        [Expired("a", attempts=1, max_attempts=3, lease_expirations=0), Expired("b", 3, 3, 2)]
    )
    assert [(v.task_id, v.status, v.lease_expirations, v.error) for v in verdicts] == [
        ("a", TaskStatus.QUEUED, 1, None),
        ("b", TaskStatus.DEAD, 3, "lease expired 3 times: the worker running it died or stalled"),
    ]
    assert report_verdicts(reversed(verdicts)).requeued == ("a",)
    assert report_verdicts(verdicts).dead == ("b",)


def test_lost_leases_are_those_not_applied_in_the_order_asked_once_each() -> None:
    asked = [Lease("c", "t", 1), Lease("a", "t", 1), Lease("b", "t", 1), Lease("c", "u", 2)]
    assert lost_leases(asked, {"a"}) == ["c", "b"]
    assert lost_leases(asked, {"a", "b", "c"}) == []
    refuse_lost(asked, {"a", "b", "c"})
    with pytest.raises(LeaseLost) as caught:
        refuse_lost(asked, {"c"})
    assert caught.value.task_ids == ("a", "b")


def test_resolution_against_held_keys_and_the_batch_itself() -> None:
    batch = [task("1", key="k"), task("2", key="held"), task("3", key="k"), task("4", "r", "k")]
    resolution = resolve(batch, {("q", "held"): "0"})
    assert resolution.ids == ("1", "0", "1", "4")
    assert [t.id for t in resolution.fresh] == ["1", "4"]
    assert resolution.conflicts == {("q", "held"): "0", ("q", "k"): "1"}
    assert resolution.reply(OnConflict.SKIP) == ["1", "0", "1", "4"]
    with pytest.raises(IdempotencyConflict) as caught:
        resolution.reply(OnConflict.RAISE)
    assert (caught.value.queue, caught.value.conflicting_keys, caught.value.total) == (
        "q",
        ("held", "k"),
        4,
    )


def test_a_conflict_names_the_queue_of_the_first_task_holding_a_conflicting_key() -> None:
    batch = [task("1", "a", key="k"), task("2", "b", key="k")]
    assert conflict(batch, {("b", "k")}).queue == "b"


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b"]), st.none() | st.sampled_from(["x", "y", "z"])),
        max_size=12,
    ),
    st.sets(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["x", "y"]))),
)
def test_fresh_tasks_never_share_a_key_nor_take_a_held_one(
    shapes: list[tuple[str, str | None]], held: set[tuple[str, str]]
) -> None:
    batch = [task(str(n), queue, key) for n, (queue, key) in enumerate(shapes)]
    resolution = resolve(batch, {key: "held" for key in held})
    fresh_keys = [(t.queue, t.idempotency_key) for t in resolution.fresh if t.idempotency_key]
    assert len(fresh_keys) == len(set(fresh_keys))
    assert not set(fresh_keys) & held
    assert len(resolution.ids) == len(batch)
    stored = {t.id for t in resolution.fresh}
    assert all(i in stored or i == "held" for i in resolution.ids)
    assert bool(resolution.conflicts) == (len(resolution.fresh) < len(batch))


def test_storable_text_passes_and_names_the_field_that_fails() -> None:
    loosely_typed = dataclasses.replace(task("2"), metadata={"attempt": 5})
    check_storable([task("1", key="é-ok", origin="ünïcode"), loosely_typed])
    with pytest.raises(InvalidTask) as caught:
        check_storable([task("1"), task("2", origin="a\x00b")])
    assert (caught.value.task_id, caught.value.field) == ("2", "metadata")
    assert "metadata value of 'origin'" in str(caught.value)
    assert "a\x00b" not in str(caught.value)
