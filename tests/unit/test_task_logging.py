"""Debuggable failures: a failed attempt's log line carries its traceback (JSON and text),
the current task is a context variable in async handlers and in plain ones' threads, the
logging filter stamps the tasks' own records with it, and ``shoal jobs show`` prints the
task's last traceback."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest

from shoal import App, RetryPolicy, TaskContextFilter
from shoal.cli import logs, main
from shoal.core.current import current_task
from shoal.core.models import TaskStatus
from shoal.testing import drain

user_logger = logging.getLogger("myproject.billing")


@pytest.fixture
async def app() -> AsyncIterator[App]:
    app = App("memory://")
    async with app:
        yield app


class Kept(logging.Handler):
    """Keeps the records it is given, after the filter under test."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.addFilter(TaskContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_the_filter_stamps_the_tasks_own_records(app: App) -> None:
    kept = Kept()
    user_logger.addHandler(kept)
    user_logger.setLevel(logging.INFO)
    try:

        @app.task(queue="billing")
        async def charge(cents: int) -> None:
            user_logger.info("charging %d", cents)

        @app.task(queue="billing")
        def refund(cents: int) -> None:  # runs in a thread: the context goes with it
            user_logger.info("refunding %d", cents)

        charged, refunded = await charge.push(5), await refund.push(7)
        await drain(app)
        user_logger.info("outside any task")
    finally:
        user_logger.removeHandler(kept)
    by_message = {r.getMessage(): r for r in kept.records}
    for message, handle, name in [
        ("charging 5", charged, charge.name),
        ("refunding 7", refunded, refund.name),
    ]:
        record = by_message[message]
        assert (record.task_id, record.task, record.attempt, record.queue) == (  # type: ignore[attr-defined]
            handle.id,
            name,
            1,
            "billing",
        )
    outside = by_message["outside any task"]
    assert outside.task_id is None and outside.attempt is None  # type: ignore[attr-defined]
    assert current_task.get() is None  # the worker's tasks did not leak it here


@pytest.mark.parametrize("log_format", ["json", "text"])
async def test_a_failed_attempt_is_logged_with_its_traceback(
    app: App, log_format: str, root: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    logs.configure(log_format, "info")

    @app.task(retry=RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01))
    async def flaky(n: int) -> None:
        user_logger.warning("about to fail")
        raise LookupError(f"no row {n}")

    handle = await flaky.push(3)
    # drain leaves scheduled work alone, and on a loaded machine the retry can still be
    # 10 ms ahead when the first attempt's drain sees nothing due: drain until it is dead.
    for _ in range(100):
        await drain(app)
        if await handle.status() is TaskStatus.DEAD:
            break
        await asyncio.sleep(0.02)
    lines = capsys.readouterr().err
    if log_format == "json":
        records = [json.loads(line) for line in lines.splitlines()]
        failures = [r for r in records if r["message"] in ("task retrying", "task dead")]
        assert [r["attempt"] for r in failures] == [1, 2]
        for failure in failures:
            assert failure["task_id"] == handle.id
            assert failure["error"] == "LookupError: no row 3"
            assert "in flaky" in failure["traceback"]
            assert failure["traceback"].rstrip().endswith("LookupError: no row 3")
        [own, *_] = [r for r in records if r["message"] == "about to fail"]
        assert (own["task_id"], own["attempt"], own["logger"]) == (handle.id, 1, user_logger.name)
    else:
        assert "task dead" in lines and f"task_id={handle.id}" in lines
        assert '    raise LookupError(f"no row {n}")' in lines  # indented below its line
        assert f"about to fail task_id={handle.id}" in lines


def test_jobs_show_prints_the_last_traceback(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    app = App(sqlite_url)

    @app.task(retry=RetryPolicy(max_attempts=1))
    def broken() -> None:
        raise ZeroDivisionError("the ledger is empty")

    async def fail_once() -> str:
        async with app:
            await app.backend.setup()
            handle = await broken.push()
            await drain(app)
            return handle.id

    task_id = asyncio.run(fail_once())  # the CLI runs its own loop, as it does from a shell
    capsys.readouterr()
    assert main(["jobs", "show", task_id, "--backend-url", sqlite_url]) == 0
    shown = capsys.readouterr().out
    assert "last error  ZeroDivisionError: the ledger is empty" in shown
    assert "last traceback" in shown
    assert shown.rstrip().endswith("ZeroDivisionError: the ledger is empty")
    assert 'raise ZeroDivisionError("the ledger is empty")' in shown
