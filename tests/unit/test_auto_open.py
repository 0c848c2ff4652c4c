"""A push on an app that is not open opens it, once, on the running loop, and closes it when
that loop ends; ``async with app`` stays the explicit form (in-memory backend)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from shoal import App
from shoal.core.errors import ConfigurationError


def counting_app() -> tuple[App, list[str]]:
    app = App("memory://")
    calls: list[str] = []
    backend = app.backend
    open_, close = backend.open, backend.close

    async def opening() -> None:
        calls.append("open")
        await asyncio.sleep(0.01)  # long enough for every racing push to arrive meanwhile
        await open_()

    async def closing() -> None:
        calls.append("close")
        await close()

    backend.open = opening  # type: ignore[method-assign]
    backend.close = closing  # type: ignore[method-assign]
    return app, calls


def test_concurrent_first_pushes_open_once_and_the_loop_end_closes() -> None:
    app, calls = counting_app()

    @app.task
    async def hello(n: int) -> None: ...

    async def main() -> list[str]:
        return [h.id for h in await asyncio.gather(*(hello.push(n=i) for i in range(20)))]

    ids = asyncio.run(main())
    assert len(set(ids)) == 20
    assert calls == ["open", "close"]
    ids = asyncio.run(main())  # a new loop: opened anew there, closed with it
    assert calls == ["open", "close", "open", "close"]


def test_async_with_is_the_explicit_form_and_closes_what_it_opened() -> None:
    app, calls = counting_app()

    @app.task
    async def hello(n: int) -> None: ...

    async def main() -> None:
        async with app:
            await hello.push(n=1)
            await hello.push(n=2)
        assert calls == ["open", "close"]

    asyncio.run(main())
    assert calls == ["open", "close"]  # nothing left for the loop's end to close


def test_a_failed_opening_is_tried_again_by_the_next_push() -> None:
    app = App("memory://")
    failures = [RuntimeError("first try fails")]
    open_ = app.backend.open

    async def flaky() -> None:
        if failures:
            raise failures.pop()
        await open_()

    app.backend.open = flaky  # type: ignore[method-assign]

    @app.task
    async def hello(n: int) -> None: ...

    async def main() -> str:
        with pytest.raises(RuntimeError, match="first try fails"):
            await hello.push(n=1)
        return (await hello.push(n=2)).id

    assert asyncio.run(main())


def test_a_push_from_another_loop_runs_on_the_apps_loop_in_its_thread() -> None:
    app = App("memory://")

    @app.task
    async def hello(n: int) -> None: ...

    opened = threading.Event()
    release = threading.Event()

    def serve() -> None:
        async def hold() -> None:
            async with app:
                opened.set()
                await asyncio.to_thread(release.wait, 30)

        asyncio.run(hold())

    server = threading.Thread(target=serve)
    server.start()
    try:
        assert opened.wait(30)

        home = app._home.loop
        ran_on: list[asyncio.AbstractEventLoop] = []
        push_many = app.push_many

        async def noting(*args: Any, **kwargs: Any) -> list[str]:
            ran_on.append(asyncio.get_running_loop())
            return await push_many(*args, **kwargs)

        app.push_many = noting  # type: ignore[method-assign]
        task_id = asyncio.run(hello.push(n=1)).id  # from a loop of its own, in this thread
        assert ran_on[-1] is home  # handed over to the app's loop
        assert app.call_sync(app.backend.get, task_id) is not None
        # The sync form goes to the app's own loop too.
        task_id = hello.push_sync(n=2).id
        assert ran_on[-1] is home
        assert app.call_sync(app.backend.get, task_id) is not None
    finally:
        release.set()
        server.join(30)


async def test_a_sync_push_inside_a_running_loop_is_refused() -> None:
    app = App("memory://")

    @app.task
    async def hello(n: int) -> None: ...

    with pytest.raises(ConfigurationError, match="await the async form"):
        hello.push_sync(n=1)


def test_a_push_while_the_apps_loop_is_not_running_is_refused_with_the_way_out() -> None:
    app = App("memory://")

    @app.task
    async def hello(n: int) -> None: ...

    paused = asyncio.new_event_loop()
    try:
        paused.run_until_complete(app.open())

        async def elsewhere() -> None:
            with pytest.raises(ConfigurationError, match="which is not running"):
                await hello.push(n=1)

        asyncio.run(elsewhere())
        paused.run_until_complete(app.close())
    finally:
        paused.close()
