"""The sync API: pushes from threads without a loop, from many threads at once, after
``os.fork()`` in the child, a result waited for without a loop, and a clean exit, over real
servers.

Matrix: SQLite, PostgreSQL and Redis (memory too where one process suffices), each with a
fresh store. The tests are plain functions: no event loop runs in their thread, as in a
script or a sync web view.
"""

from __future__ import annotations

import asyncio
import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from shoal import App, Worker, WorkerSettings
from shoal.backends import open_backend
from shoal.core.models import TaskStatus
from shoal.testing import drain

STORES = ["sqlite_url", "postgres_url", "redis_url"]


@pytest.fixture(params=STORES)
def url(request: pytest.FixtureRequest) -> str:
    value: str = request.getfixturevalue(request.param)
    asyncio.run(_setup(value))
    return value


async def _setup(url: str) -> None:
    async with open_backend(url) as backend:
        await backend.setup()


async def _stored(url: str, ids: list[str]) -> list[TaskStatus | None]:
    async with open_backend(url) as backend:
        tasks = [await backend.get(task_id) for task_id in ids]
    return [None if task is None else task.status for task in tasks]


@pytest.fixture
def apps() -> Iterator[list[App]]:
    """The apps a test made; closed at its end, before its store goes away (the portal
    outlives the test, and would keep their connections open)."""
    made: list[App] = []
    yield made
    for app in made:
        app.call_sync(app.close)


@pytest.fixture
def make_app(apps: list[App]) -> Callable[[str], App]:
    def make(url: str) -> App:
        app = App(url)

        @app.task(name="greet", queue="sync")
        async def greet(name: str) -> None: ...

        apps.append(app)
        return app

    return make


def test_a_thread_without_a_loop_pushes_and_reads_back(
    url: str, make_app: Callable[[str], App]
) -> None:
    app = make_app(url)
    greet = app.get_task("greet")
    pushed: list[str] = []
    thread = threading.Thread(target=lambda: pushed.append(greet.push_sync(name="ada").id))
    thread.start()
    thread.join(60)
    [task_id] = pushed
    batch = [h.id for h in greet.push_many_sync([{"name": "bo"}, {"name": "cy"}], priority=3)]
    assert asyncio.run(_stored(url, [task_id, *batch])) == [TaskStatus.QUEUED] * 3
    # The app's own helper runs any of its coroutine functions the same way.
    stored = app.call_sync(app.backend.get, batch[0])
    assert stored is not None
    assert stored.priority == 3


@pytest.mark.parametrize("store", ["memory_url", *STORES])
def test_many_threads_push_at_once_on_one_loop_and_pool(
    store: str, request: pytest.FixtureRequest, make_app: Callable[[str], App]
) -> None:
    url = request.getfixturevalue(store)
    asyncio.run(_setup(url))
    app = make_app(url)
    greet = app.get_task("greet")
    ids: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def producer(n: int) -> None:
        barrier.wait(30)  # every thread's first push races the app's first opening
        for i in range(25):
            task_id = greet.push_sync(name=f"{n}-{i}").id
            with lock:
                ids.append(task_id)

    threads = [threading.Thread(target=producer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(set(ids)) == 200
    backend = app.backend  # one backend: the one the portal opened
    stats = app.call_sync(backend.stats, ["sync"])
    assert stats["sync"].ready == 200


def test_after_fork_the_child_pushes_on_its_own_loop_and_pool(
    url: str, make_app: Callable[[str], App]
) -> None:
    app = make_app(url)
    greet = app.get_task("greet")
    before = greet.push_sync(name="parent").id  # the parent's portal and pool are in use
    parent_backend = app.backend
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report and leave without running the parent's clean-up
        code = 1
        try:
            signal.alarm(60)  # a child stuck on its parent's loop must not outlive the test
            os.close(reader)
            task_id = greet.push_sync(name="child").id
            fresh = app.backend is not parent_backend
            os.write(writer, f"{task_id} {fresh}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(writer)
    with os.fdopen(reader) as pipe:
        ready, _, _ = select.select([pipe], [], [], 60)
        report = pipe.read() if ready else ""
    if not report:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert report, "the child's push did not return"
    child_id, fresh = report.split()
    assert os.waitstatus_to_exitcode(status) == 0
    assert fresh == "True"
    # The child neither used nor closed the parent's connections: the parent pushes on.
    after = greet.push_sync(name="parent again").id
    assert app.backend is parent_backend
    statuses = asyncio.run(_stored(url, [before, child_id, after]))
    assert statuses == [TaskStatus.QUEUED] * 3


EXITING = textwrap.dedent(
    """
    import sys
    from shoal import App

    app = App(sys.argv[1])

    @app.task(queue="sync")
    async def greet(name: str) -> None: ...

    print(greet.push_sync(name="ada").id, flush=True)
    backend = app.backend
    close = backend.close

    async def closing() -> None:
        await close()
        print("closed", flush=True)

    backend.close = closing
    """
)


def test_at_exit_the_app_is_closed_and_nothing_hangs(url: str) -> None:
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error", "-c", EXITING, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    task_id, closed = done.stdout.split()
    assert closed == "closed"
    assert "Traceback" not in done.stderr
    assert asyncio.run(_stored(url, [task_id])) == [TaskStatus.QUEUED]
    assert time.monotonic() - began < 60


def test_a_plain_handler_in_a_worker_pushes_on_the_workers_own_loop_and_pool(
    url: str, apps: list[App]
) -> None:
    app = App(url)
    apps.append(app)
    ran: list[int] = []

    @app.task(queue="sync")
    async def child(n: int) -> None:
        ran.append(n)

    @app.task(queue="sync")
    def parent(n: int) -> None:  # runs in the worker's thread pool: no loop in its thread
        child.push_sync(n=n + 1)

    async def run() -> int:
        await parent.push(n=1)
        return await drain(app)

    assert asyncio.run(run()) == 2
    assert ran == [2]


def test_each_loop_opens_the_app_anew_and_an_async_push_joins_a_sync_one(
    url: str, make_app: Callable[[str], App]
) -> None:
    app = make_app(url)
    greet = app.get_task("greet")
    # Two scripts' worth of asyncio.run: each opens the app on its loop and closes it there.
    first = asyncio.run(greet.push(name="one")).id
    second = asyncio.run(greet.push(name="two")).id
    # A sync push homes the app on the portal; an async view on another loop then pushes
    # through it (as Django's sync and async views share one app).
    third = greet.push_sync(name="three").id
    fourth = asyncio.run(greet.push(name="four")).id
    statuses = asyncio.run(_stored(url, [first, second, third, fourth]))
    assert statuses == [TaskStatus.QUEUED] * 4


def test_a_worker_started_after_sync_pushes_moves_the_app_to_its_own_loop(
    url: str, make_app: Callable[[str], App]
) -> None:
    app = make_app(url)
    greet = app.get_task("greet")
    ids = [greet.push_sync(name="early").id, greet.push_sync(name="bird").id]  # on the portal
    assert asyncio.run(drain(app)) == 2  # the worker opens it on its loop, with its own pool
    assert asyncio.run(_stored(url, ids)) == [TaskStatus.DONE] * 2
    assert greet.push_sync(name="late")  # and a sync push afterwards opens it on the portal


def test_a_thread_without_a_loop_waits_for_the_result_a_worker_keeps(
    url: str, apps: list[App]
) -> None:
    """``push_sync`` returns a handle whose ``result_sync`` blocks its thread until a worker,
    here in another thread with its own app and loop, has run the task and kept its value."""

    def make() -> App:
        app = App(url, keep_result=60)

        @app.task(name="double", queue="sync")
        async def double(n: int) -> int:
            return 2 * n

        return app

    producer, consumer = make(), make()
    apps.append(producer)
    worker = Worker(consumer, WorkerSettings(queues=("sync",), poll_interval=0.05))
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        loops.append(asyncio.get_running_loop())
        try:
            await worker.run()
        finally:
            await consumer.close()

    serving = threading.Thread(target=asyncio.run, args=(serve(),))
    serving.start()
    outcomes: list[tuple[int, TaskStatus]] = []

    def produce() -> None:
        handle = producer.get_task("double").push_sync(n=21)
        outcomes.append((handle.result_sync(timeout=60), handle.status_sync()))

    try:
        thread = threading.Thread(target=produce)
        thread.start()
        thread.join(90)
    finally:
        while not loops and serving.is_alive():
            time.sleep(0.01)
        if loops:
            loops[0].call_soon_threadsafe(worker.stop, "test over")
        serving.join(60)
    assert outcomes == [(42, TaskStatus.DONE)]
