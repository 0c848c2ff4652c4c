"""What only the Redis backend has to show, against real redis-server processes.

The shared contract suite (shoal.testing.contract) runs against Redis too; these tests cover the
rest: one pool for many queues, apps and workers, batches across queues, a restart with AOF on,
lost replies replayed safely, NOSCRIPT, credentials and unreachable servers, where a task
body lives, and wake-ups from another client.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis import exceptions as rex

from shoal import App, Worker, WorkerSettings
from shoal.backends import open_backend
from shoal.backends.redis import RedisBackend, from_url
from shoal.backends.redis.link import Command
from shoal.core.errors import (
    BackendUnavailable,
    ConfigurationError,
    IdempotencyConflict,
    LeaseLost,
)
from shoal.core.ids import new_id
from shoal.core.models import NewTask, TaskStatus, utcnow
from tests.servers.ports import free_port
from tests.servers.redis import RedisServer

PASSWORD = "s3cret-Pa55word"


def task(queue: str = "default", *, priority: int = 0, key: str | None = None) -> NewTask:
    return NewTask(
        id=new_id(), queue=queue, name="tasks.work", payload=b'{"marker": "body-once"}',
        run_at=utcnow(), max_attempts=3, priority=priority, idempotency_key=key,
    )  # fmt: skip


def everything_said(exc: BaseException) -> str:
    """Every message of an exception and its chain, as a user would see them printed."""
    return "".join(traceback.format_exception(exc)) + repr(exc)


@pytest.fixture
async def backend(redis_url: str) -> AsyncIterator[RedisBackend]:
    opened = from_url(redis_url)
    await opened.open()
    await opened.setup()  # as `shoal migrate` would: writes the dataset marker
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def own_server(tmp_path: Path) -> RedisServer:
    """A server of this test's own, which it may restart or protect with a password."""
    return RedisServer(tmp_path / "redis")


async def test_queues_and_apps_share_one_pool(redis_server: RedisServer) -> None:
    pool = aioredis.ConnectionPool.from_url(redis_server.url(), max_connections=4)
    shared = aioredis.Redis(connection_pool=pool)
    billing = from_url(redis_server.url(prefix="app-billing"), client=shared)
    mail = from_url(redis_server.url(prefix="app-mail"), client=shared)
    try:
        for app in (billing, mail):
            await app.open()
            assert app.client is shared
        await billing.push([task("invoices"), task("refunds"), task("refunds")])
        await mail.push([task("invoices"), task("outbox")])
        await asyncio.gather(*(app.claim(["invoices"], "w", 1, 30) for app in (billing, mail)))

        assert await billing.queues() == ["invoices", "refunds"]
        assert await mail.queues() == ["invoices", "outbox"]
        figures = await billing.stats(["invoices", "refunds", "outbox"])
        assert [(s.ready, s.running) for s in figures.values()] == [(0, 1), (2, 0), (0, 0)]
        assert len(await mail.list_tasks()) == 2
        await billing.close()
        assert (await mail.stats(["outbox"]))["outbox"].ready == 1  # the pool is still open
    finally:
        await billing.close()
        await mail.close()
        await shared.aclose()
        await pool.disconnect()
        for prefix in ("app-billing", "app-mail"):
            redis_server.delete_prefix(prefix)


async def test_apps_and_workers_share_one_backend(redis_url: str) -> None:
    shared = from_url(redis_url)
    billing, mail = App(), App()
    done: list[str] = []

    @billing.task(queue="invoices")
    async def invoice(n: int) -> None:
        done.append(f"invoice-{n}")

    @billing.task(queue="refunds")
    async def refund(n: int) -> None:
        done.append(f"refund-{n}")

    @mail.task(queue="outbox")
    async def send(n: int) -> None:
        done.append(f"send-{n}")

    for app in (billing, mail):
        app.use_backend(shared)  # one pool and one listener for every queue of both apps
    workers = [
        Worker(app, WorkerSettings(concurrency=4, poll_interval=0.05)) for app in (billing, mail)
    ]
    running = [asyncio.create_task(w.run()) for w in workers]
    try:
        for definition in (invoice, refund, send):
            await definition.push_many([{"n": i} for i in range(20)])
        async with asyncio.timeout(20):
            # A handler's return is acked on its worker's next loop: wait for the acks too.
            while len(await shared.list_tasks(statuses=[TaskStatus.DONE], limit=100)) < 60:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert sorted(await shared.queues()) == ["invoices", "outbox", "refunds"]
        figures = await shared.stats(["invoices", "outbox", "refunds"])
        assert all(s.ready == s.running == s.dead == 0 for s in figures.values())
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.gather(*running)
        await shared.close()
    assert len(done) == len(set(done)) == 60


async def test_a_batch_across_queues_is_all_or_nothing(backend: RedisBackend) -> None:
    await backend.push([task("b", key="k")])
    batch = [task("a"), task("b", key="k"), task("c")]
    with pytest.raises(IdempotencyConflict) as caught:
        await backend.push(batch)
    assert (caught.value.queue, caught.value.conflicting_keys) == ("b", ("k",))
    figures = await backend.stats(["a", "b", "c"])
    assert [s.ready for s in figures.values()] == [0, 1, 0]


async def test_a_claim_across_queues_takes_the_best_first(backend: RedisBackend) -> None:
    low, high, middle = task("a", priority=-5), task("b", priority=9), task("c")
    await backend.push([low, high, middle])
    claims = await backend.claim(["a", "b", "c"], "w1", 2, 30)
    assert [c.task.id for c in claims] == [high.id, middle.id]
    assert {c.lease.token[32:] for c in claims} == {"b", "c"}


async def test_priority_outside_the_exact_range_is_refused(backend: RedisBackend) -> None:
    with pytest.raises(ConfigurationError, match=r"-1024\.\.1023"):
        await backend.push([task(priority=5000)])


async def test_a_task_body_is_stored_once(backend: RedisBackend, redis_server: RedisServer) -> None:
    pushed = task("mail")
    await backend.push([pushed])
    [claim] = await backend.claim(["mail"], "w1", 1, 30)
    with redis_server.client() as client:
        keys = [k.decode() for k in client.scan_iter(match=f"*{backend.prefix}*")]
        holding = []
        for key in keys:
            kind = client.type(key).decode()
            if kind == "hash":
                content = b"".join(client.hgetall(key).values())
            elif kind == "zset":
                content = b"".join(client.zrange(key, 0, -1))
            else:
                content = b"".join(client.lrange(key, 0, -1) if kind == "list" else [])
            if b"body-once" in content:
                holding.append(key)
    assert holding == [f"{{{backend.prefix}:mail}}:t:{pushed.id}"]
    # Every key of the queue carries the queue's hash tag: one Cluster slot per queue.
    queue_keys = [k for k in keys if not k.startswith(f"{{{backend.prefix}}}")]
    assert queue_keys and all(k.startswith(f"{{{backend.prefix}:mail}}:") for k in queue_keys)
    await backend.ack([claim.lease])


async def test_wait_for_work_wakes_on_a_push_from_another_client(redis_url: str) -> None:
    waiting, pushing = from_url(redis_url), from_url(redis_url)
    await waiting.open()
    await pushing.open()
    try:
        loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(waiting.wait_for_work(["mail"], 10))
        await asyncio.sleep(0.2)  # the listener subscribes
        started = loop.time()
        await pushing.push([task("other")])  # another queue does not wake it
        await asyncio.sleep(0.2)
        assert not waiter.done()
        await pushing.push([task("mail")])
        await asyncio.wait_for(waiter, 2)
        assert loop.time() - started < 0.6
    finally:
        await waiting.close()
        await pushing.close()


async def test_close_ends_a_listener_that_swallowed_its_cancellation(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = aioredis.client.PubSub.subscribe
    swallowed: list[bool] = []

    async def subscribe(self: aioredis.client.PubSub, *channels: str) -> None:
        if not swallowed:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:  # as Python 3.11's wait_for may, inside redis-py
                swallowed.append(True)
        await real(self, *channels)

    monkeypatch.setattr(aioredis.client.PubSub, "subscribe", subscribe)
    waiter = asyncio.create_task(backend.wait_for_work(["mail"], 10))
    await asyncio.sleep(0.1)  # the listener is in subscribe
    async with asyncio.timeout(3):
        await backend.close()
    assert swallowed
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)


async def test_noscript_after_script_flush_is_recovered(backend: RedisBackend) -> None:
    await backend.push([task()])
    await backend.client.script_flush()
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.client.script_flush()
    await backend.ack([claim.lease])
    done = await backend.get(claim.task.id)
    assert done is not None and done.status is TaskStatus.DONE


async def test_restart_with_aof_keeps_queued_and_running_tasks(own_server: RedisServer) -> None:
    own_server.start()
    backend, other = from_url(own_server.url()), from_url(own_server.url())
    loop = asyncio.get_running_loop()

    async def woken_by_other(queue: str) -> bool:
        waiter = asyncio.create_task(backend.wait_for_work([queue], 0.5))
        await asyncio.sleep(0.05)
        started = loop.time()
        await other.push([task(queue)])
        await waiter
        return loop.time() - started < 0.45

    try:
        await backend.open()
        await other.open()
        await backend.push([task() for _ in range(10)])
        running = await backend.claim(["default"], "w1", 4, 60)
        assert await woken_by_other("wake")  # the listener is connected before the crash

        own_server.restart(kill=True)  # a crash: the AOF holds everything acknowledged

        figures = (await backend.stats(["default"]))["default"]  # reconnects by itself
        assert (figures.ready, figures.running) == (6, 4)
        await backend.ack([c.lease for c in running])  # the leases survived
        assert len(await backend.claim(["default"], "w1", 10, 60)) == 6
        deadline = time.monotonic() + 10
        while not await woken_by_other("wake"):  # the listener reconnects with backoff
            assert time.monotonic() < deadline, "the listener never came back"
        assert await woken_by_other("wake")
    finally:
        await backend.close()
        await other.close()
        own_server.stop()


async def test_an_operation_waits_out_a_short_outage(own_server: RedisServer) -> None:
    own_server.start()
    backend = from_url(own_server.url())
    try:
        await backend.open()
        await backend.push([task()])
        own_server.stop()
        later = threading.Timer(0.5, own_server.start)
        later.start()
        try:
            [claim] = await backend.claim(["default"], "w1", 1, 30)
        finally:
            later.join()
        await backend.ack([claim.lease])
    finally:
        await backend.close()
        own_server.stop()


async def test_a_longer_outage_raises_a_typed_error(own_server: RedisServer) -> None:
    own_server.password = PASSWORD
    own_server.start()
    backend = from_url(own_server.url() + "?reconnect_timeout=0.3")
    try:
        await backend.open()
        own_server.stop()
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught:
            await backend.stats(["default"])
        assert time.monotonic() - started < 3
        assert PASSWORD not in everything_said(caught.value)
        assert "127.0.0.1" in str(caught.value)
    finally:
        await backend.close()


async def test_an_unreachable_server_fails_fast_without_the_password() -> None:
    url = f"redis://app:{PASSWORD}@127.0.0.1:{free_port()}/0"
    backend = open_backend(url)
    assert isinstance(backend, RedisBackend) and PASSWORD not in backend.url
    started = time.monotonic()
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    assert time.monotonic() - started < 3
    assert PASSWORD not in everything_said(caught.value)
    assert "redis://app:***@127.0.0.1" in str(caught.value)
    await backend.close()


async def test_a_wrong_password_is_typed_and_never_printed(own_server: RedisServer) -> None:
    own_server.password = PASSWORD
    own_server.start()
    try:
        for url in (own_server.url(password="wrong-Pa55word"), own_server.url(password="")):
            backend = from_url(url)
            started = time.monotonic()
            with pytest.raises(BackendUnavailable, match="credentials") as caught:
                await backend.open()
            assert time.monotonic() - started < 3  # never retried: waiting cannot fix it
            said = everything_said(caught.value)
            assert PASSWORD not in said and "wrong-Pa55word" not in said
            await backend.close()
        async with from_url(own_server.url()) as right:
            assert await right.push([task()])
    finally:
        own_server.stop()


@pytest.mark.parametrize(
    "url",
    [
        f"redis://:{PASSWORD}@127.0.0.1:6379/0?colour=blue",
        f"redis://:{PASSWORD}@127.0.0.1:notaport/0",
        f"redis://:{PASSWORD}@127.0.0.1:6379/0?prefix={{x}}",
        f"redis://:{PASSWORD}@127.0.0.1:6379/0?reconnect_timeout=soon",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        open_backend(url)
    assert PASSWORD not in everything_said(caught.value)


def lose_first_reply(backend: RedisBackend) -> list[int]:
    """Make the next round trip reach Redis and then lose its reply, as a dropped
    connection does; returns a list that counts the round trips."""
    link = backend._link
    real: Callable[[Sequence[Command]], Awaitable[list[Any]]] = link._pipeline
    calls: list[int] = []

    async def flaky(commands: Sequence[Command]) -> list[Any]:
        replies = await real(commands)
        calls.append(len(calls))
        if len(calls) == 1:
            raise rex.ConnectionError("the reply was lost")
        return replies

    link._pipeline = flaky  # type: ignore[method-assign]
    return calls


async def test_replayed_round_trips_apply_once(backend: RedisBackend) -> None:
    batch = [task(key="once"), task()]
    calls = lose_first_reply(backend)
    assert await backend.push(batch) == [t.id for t in batch]
    assert len(calls) == 2 and (await backend.stats(["default"]))["default"].ready == 2

    calls = lose_first_reply(backend)
    claims = await backend.claim(["default"], "w1", 1, 30)
    assert len(calls) == 2 and len(claims) == 1
    figures = (await backend.stats(["default"]))["default"]
    assert (figures.ready, figures.running) == (1, 1)  # the replay took nothing more

    calls = lose_first_reply(backend)
    await backend.ack([claims[0].lease])  # applied by the lost attempt: not a LeaseLost
    assert len(calls) == 2
    with pytest.raises(LeaseLost):
        await backend.ack([claims[0].lease])  # a genuine second ack still is


async def test_scheduled_work_and_admin_on_redis(backend: RedisBackend) -> None:
    later = NewTask(
        id=new_id(), queue="default", name="tasks.work", payload=b"{}",
        run_at=utcnow() + timedelta(seconds=0.2), max_attempts=1,
    )  # fmt: skip
    await backend.push([later])
    assert await backend.claim(["default"], "w1", 1, 30) == []
    await asyncio.sleep(0.3)
    figures = (await backend.stats(["default"]))["default"]
    assert figures.ready == 1 and figures.oldest_ready_age is not None
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.release([claim.lease])
    assert await backend.cancel(later.id)
    assert await backend.retry(later.id, run_at=utcnow() + timedelta(hours=1))
    assert (await backend.stats(["default"]))["default"].scheduled == 1
    await backend.verify_schema()


async def test_a_filtered_listing_walks_on_in_bounded_round_trips(
    backend: RedisBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task name the newest tasks do not have: each round trip examines a few ids per
    queue, leaves a floor, and the next one goes on below it until the page is full."""
    import shoal.backends.redis.admin as redis_admin

    tasks = [
        NewTask(
            id=new_id(),
            queue=f"q{n % 3}",
            name="rare" if n % 10 == 0 else "common",
            payload=b"{}",
            run_at=utcnow(),
            max_attempts=1,
        )
        for n in range(60)
    ]
    await backend.push(tasks)
    rare = [t.id for t in reversed(tasks) if t.name == "rare"]
    monkeypatch.setattr(redis_admin, "_LIST_BUDGET", 1)  # one id per queue and round trip
    sent: list[int] = []
    real = backend._link.scripts

    async def counted(*scripts: Any) -> list[Any]:
        sent.append(len(scripts))
        return await real(*scripts)

    monkeypatch.setattr(backend._link, "scripts", counted)
    first = await backend.list_tasks(name="rare", limit=4)
    assert [t.id for t in first] == rare[:4]
    assert len(sent) > 3  # many bounded walks, not one long script
    rest = await backend.list_tasks(name="rare", before=first[-1].id, limit=4)
    assert [t.id for t in rest] == rare[4:]
