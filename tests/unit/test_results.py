"""Results through the app and a real worker on ``memory://``: keep_result, typed values,
failures with their tracebacks, expiry, and the errors a wait ends with."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from shoal import App, RetryPolicy, Worker, WorkerSettings
from shoal.core.errors import (
    ConfigurationError,
    ResultTimeout,
    ResultUnavailable,
    TaskFailed,
    TaskWasCancelled,
)
from shoal.core.models import TaskStatus
from shoal.core.tracebacks import LIMIT
from shoal.testing import drain


@dataclasses.dataclass
class Total:
    cents: int
    currency: str


class Opaque:
    """Nothing pydantic can turn into JSON."""


@pytest.fixture
async def app() -> AsyncIterator[App]:
    app = App("memory://", keep_result=60)
    await app.open()
    yield app
    await app.close()


async def test_a_typed_result_round_trips(app: App) -> None:
    @app.task
    async def add(a: int, b: int) -> int:
        return a + b

    @app.task
    def invoice(cents: int) -> Total:  # a plain function, in a thread
        return Total(cents, "EUR")

    number, total = await add.push(2, 3), await invoice.push(cents=999)
    assert await number.status() is TaskStatus.QUEUED
    await drain(app)
    assert await number.result(timeout=5) == 5
    assert await total.result(timeout=5) == Total(999, "EUR")  # a Total, not a dict
    assert await number.status() is TaskStatus.DONE


async def test_a_wait_returns_when_the_worker_finishes(app: App) -> None:
    @app.task
    async def slow() -> str:
        await asyncio.sleep(0.2)
        return "late"

    handle = await slow.push()
    waiting = asyncio.create_task(handle.result(timeout=30))
    await drain(app)
    assert await asyncio.wait_for(waiting, 5) == "late"


async def test_a_failure_raises_task_failed_with_the_remote_traceback(app: App) -> None:
    @app.task(retry=RetryPolicy(max_attempts=1))
    async def explode(n: int) -> int:
        raise ValueError(f"bad n: {n}")

    handle = await explode.push(7)
    await drain(app)
    with pytest.raises(TaskFailed) as caught:
        await handle.result(timeout=5)
    failed = caught.value
    assert (failed.error_type, failed.error_message) == ("ValueError", "bad n: 7")
    assert failed.traceback is not None
    assert "in explode" in failed.traceback and "ValueError: bad n: 7" in failed.traceback
    assert "Remote traceback" in str(failed)
    task = await app.backend.get(handle.id)
    assert task is not None and task.last_traceback == failed.traceback


async def test_a_huge_traceback_is_kept_bounded(app: App) -> None:
    def chain(depth: int) -> None:
        try:
            if depth:
                chain(depth - 1)
            raise KeyError("the bottom")
        except Exception as exc:  # every level adds its own section to the traceback
            raise RuntimeError(f"level {depth}") from exc

    @app.task(retry=RetryPolicy(max_attempts=1))
    def deep(depth: int) -> None:
        chain(depth)

    handle = await deep.push(depth=100)
    await drain(app)
    task = await app.backend.get(handle.id)
    assert task is not None and task.last_traceback is not None
    assert len(task.last_traceback) <= LIMIT
    assert "characters cut" in task.last_traceback
    assert "KeyError: 'the bottom'" in task.last_traceback  # where it began
    assert task.last_traceback.rstrip().endswith("RuntimeError: level 100")  # and ended


async def test_a_value_that_does_not_fit_fails_the_attempt_saying_so(app: App) -> None:
    @app.task
    async def lies() -> int:
        return "not a number"  # type: ignore[return-value]

    handle = await lies.push()
    await drain(app)
    with pytest.raises(TaskFailed) as caught:
        await handle.result(timeout=5)
    assert caught.value.error_type == "ResultInvalid"
    assert "does not fit its return annotation int" in caught.value.error_message
    task = await app.backend.get(handle.id)
    assert task is not None and task.status is TaskStatus.DEAD and task.attempts == 1


async def test_a_value_json_cannot_hold_fails_the_attempt(app: App) -> None:
    @app.task
    async def opaque() -> object:
        return object()

    handle = await opaque.push()
    await drain(app)
    with pytest.raises(TaskFailed, match="cannot be stored as JSON"):
        await handle.result(timeout=5)


async def test_a_cancelled_task_ends_the_wait(app: App) -> None:
    @app.task
    async def later() -> int:
        return 1

    handle = await later.configure(delay=600).push()
    waiting = asyncio.create_task(handle.result(timeout=30))
    await asyncio.sleep(0.05)
    assert await app.backend.cancel(handle.id, by="ann@laptop")
    with pytest.raises(TaskWasCancelled, match="cancelled by ann@laptop: it has no result") as e:
        await asyncio.wait_for(waiting, 5)
    assert (e.value.task_id, e.value.by) == (handle.id, "ann@laptop")


async def test_a_task_cancelled_while_it_runs_ends_the_wait_too(app: App) -> None:
    """The operations path: the cancel is a request the worker's heartbeat hears, the
    handler is stopped, and ``cancel_running`` wakes the wait as a cancel before it ran."""
    started = asyncio.Event()

    @app.task
    async def forever() -> int:
        started.set()
        await asyncio.sleep(3600)
        return 1

    handle = await forever.push()
    waiting = asyncio.create_task(handle.result(timeout=30))
    worker = Worker(app, WorkerSettings(lease_seconds=0.6, poll_interval=0.05))
    run = asyncio.create_task(worker.run())
    try:
        await asyncio.wait_for(started.wait(), 10)
        assert await app.backend.cancel(handle.id, by="ops@host")
        with pytest.raises(TaskWasCancelled) as caught:
            await asyncio.wait_for(waiting, 10)
    finally:
        worker.stop("test over")
        await run
    assert caught.value.by == "ops@host"
    assert "before it ran" not in str(caught.value)
    assert await handle.status() is TaskStatus.CANCELLED


async def test_a_wait_times_out_with_its_own_error(app: App) -> None:
    @app.task
    async def never() -> int:
        return 1

    handle = await never.push()
    with pytest.raises(ResultTimeout, match=r"did not finish within 0\.1s") as caught:
        await handle.result(timeout=0.1)
    assert isinstance(caught.value, TimeoutError)


async def test_results_are_off_unless_asked_for() -> None:
    app = App("memory://")

    @app.task
    async def plain() -> int:
        return 1

    @app.task(keep_result=timedelta(minutes=5))
    async def kept() -> int:
        return 2

    async with app:
        off, on = await plain.push(), await kept.push()
        await drain(app)
        with pytest.raises(ResultUnavailable, match="does not keep its result"):
            await off.result(timeout=1)
        assert await on.result(timeout=1) == 2
        assert await off.status() is TaskStatus.DONE


async def test_a_task_turns_the_apps_default_off(app: App) -> None:
    @app.task(keep_result=0)
    async def fire_and_forget() -> int:
        return 1

    assert fire_and_forget.options.keep_result is None
    with pytest.raises(ResultUnavailable):
        await (await fire_and_forget.push()).result(timeout=1)


async def test_an_expired_result_is_unavailable() -> None:
    app = App("memory://", keep_result=0.2)

    @app.task
    async def brief() -> int:
        return 1

    async with app:
        handle = await brief.push()
        await drain(app)
        assert await handle.result(timeout=1) == 1
        await asyncio.sleep(0.3)
        with pytest.raises(ResultUnavailable, match="expired"):
            await handle.result(timeout=1)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="keep_result must be a duration"):
        App("memory://", keep_result=-1)
    app = App("memory://")
    with pytest.raises(ConfigurationError, match="cannot be stored as JSON"):

        @app.task(keep_result=60)
        def opaque() -> Opaque:
            return Opaque()


async def test_push_by_name_and_handles_by_id(app: App) -> None:
    @app.task(name="sums.add")
    async def add(a: int, b: int) -> int:
        return a + b

    handle = await app.push("sums.add", {"a": 1, "b": 1})
    await drain(app)
    assert await handle.result(timeout=1) == 2
    assert await add.handle(handle.id).result(timeout=1) == 2
    assert handle == add.handle(handle.id) and len({handle, add.handle(handle.id)}) == 1
