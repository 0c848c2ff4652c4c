"""Enqueue by name: a producer without the handler's code pushes by task name and queue; the
worker checks the payload before running, as for every task.

Matrix: memory (one backend shared by the two apps), SQLite, PostgreSQL and Redis (two apps
on one URL, as two services would be), each with a fresh store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from shoal import App, TaskStatus
from shoal.core.errors import ConfigurationError, PayloadInvalid, PayloadUndecodable
from shoal.testing import drain


@pytest.fixture
async def apps(backend_url: str) -> AsyncIterator[tuple[App, App, list[tuple[int, str]]]]:
    """A producer that registers nothing and a worker's app that registers the handler."""
    producer, consumer = App(backend_url), App(backend_url)
    if backend_url.startswith("memory"):
        consumer.use_backend(producer.backend)
    ran: list[tuple[int, str]] = []

    @consumer.task(name="billing.charge", queue="billing")
    async def charge(invoice_id: int, currency: str = "EUR") -> None:
        ran.append((invoice_id, currency))

    async with producer, consumer:
        await producer.backend.setup()
        yield producer, consumer, ran


async def test_a_producer_without_the_handler_pushes_and_the_worker_runs_it(
    apps: tuple[App, App, list[tuple[int, str]]],
) -> None:
    producer, consumer, ran = apps
    first = (await producer.push_by_name("billing.charge", {"invoice_id": 42}, queue="billing")).id
    second = (
        await producer.push_by_name(
            "billing.charge", '{"invoice_id": "7", "currency": "USD"}', queue="billing", priority=5
        )
    ).id
    stored = await producer.backend.get(second)
    assert stored is not None
    assert (stored.queue, stored.priority) == ("billing", 5)
    assert await drain(consumer) == 2
    assert sorted(ran) == [(7, "USD"), (42, "EUR")]  # "7" validated into an int by the worker
    for task_id in (first, second):
        task = await consumer.backend.get(task_id)
        assert task is not None
        assert task.status is TaskStatus.DONE


async def test_the_worker_ends_an_unknown_name_or_a_payload_that_does_not_fit_dead(
    apps: tuple[App, App, list[tuple[int, str]]],
) -> None:
    producer, consumer, ran = apps
    unknown = (await producer.push_by_name("billing.refund", {"invoice_id": 1}, queue="billing")).id
    unfit = (await producer.push_by_name("billing.charge", {"invoice": 1}, queue="billing")).id
    await drain(consumer)
    assert ran == []
    refund, charge = (await consumer.backend.get(unknown), await consumer.backend.get(unfit))
    assert refund is not None
    assert charge is not None
    assert refund.status is charge.status is TaskStatus.DEAD
    assert refund.last_error is not None
    assert "no task named 'billing.refund' is registered" in refund.last_error
    assert charge.last_error is not None
    assert "field 'invoice_id': Field required" in charge.last_error
    assert "unexpected field 'invoice'" in charge.last_error


async def test_a_registered_name_is_checked_at_the_call_site_and_keeps_its_queue(
    apps: tuple[App, App, list[tuple[int, str]]],
) -> None:
    _, consumer, _ = apps
    with pytest.raises(PayloadInvalid, match="invoice_id"):
        await consumer.push_by_name("billing.charge", {"invoice_id": "not a number"})
    task_id = (await consumer.push_by_name("billing.charge", {"invoice_id": 3})).id
    elsewhere = (
        await consumer.push_by_name("billing.charge", {"invoice_id": 4}, queue="urgent")
    ).id
    queues = [(await consumer.backend.get(i)) for i in (task_id, elsewhere)]
    assert [task.queue for task in queues if task is not None] == ["billing", "urgent"]


async def test_bad_input_is_refused_before_anything_is_stored(
    apps: tuple[App, App, list[tuple[int, str]]],
) -> None:
    producer, _, _ = apps
    with pytest.raises(ConfigurationError, match=r"give queue=\.\.\."):
        await producer.push_by_name("billing.charge", {"invoice_id": 1})
    with pytest.raises(PayloadUndecodable, match="not valid JSON"):
        await producer.push_by_name("billing.charge", "{invoice_id: 1", queue="billing")
    with pytest.raises(PayloadInvalid, match="must be a JSON object"):
        await producer.push_by_name("billing.charge", "[1, 2]", queue="billing")
    with pytest.raises(PayloadInvalid, match="cannot be encoded as JSON"):
        await producer.push_by_name("billing.charge", {"at": object()}, queue="billing")
    assert (await producer.backend.stats(["billing"]))["billing"].ready == 0


def test_the_sync_form_pushes_by_name_from_a_thread_without_a_loop(sqlite_url: str) -> None:
    producer, consumer = App(sqlite_url), App(sqlite_url)
    ran: list[int] = []

    @consumer.task(name="billing.charge", queue="billing")
    async def charge(invoice_id: int) -> None:
        ran.append(invoice_id)

    async def setup_then_drain() -> None:
        async with consumer:
            await consumer.backend.setup()
            await asyncio.to_thread(
                producer.push_by_name_sync, "billing.charge", {"invoice_id": 9}, queue="billing"
            )
            await drain(consumer)

    try:
        asyncio.run(setup_then_drain())
    finally:
        producer.call_sync(producer.close)
    assert ran == [9]
