"""The board in a real browser: Debian's Chromium (``/usr/bin/chromium``, installed by
``make browser``) driven by Playwright, against a real ``shoal board`` process on SQLite.

Hostile payloads, names, errors and metadata are shown as text and never run; pages update
themselves without a reload; an action goes through its confirmation. With
``BOARD_SCREENSHOTS=<folder>`` the screenshots of each page are saved there (the README's
come from ``BOARD_SCREENSHOTS=docs/board``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from shoal.backends import Backend, open_backend
from shoal.core.models import Failure, KeptValue, WorkerInfo, utcnow
from shoal.core.schedule_records import ScheduleSpec
from tests.board.conftest import ADMIN, basic
from tests.board.test_board import HOSTILE, task
from tests.servers.ports import free_port

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture
def board_process(sqlite_url: str) -> Iterator[str]:
    """A real ``shoal board`` on a free loopback port; its address once it answers."""
    port = free_port()
    env = {**os.environ, "SHOAL_BOARD_ADMIN": ":".join(ADMIN)}
    command = [sys.executable, "-m", "shoal", "board", "--backend-url", sqlite_url]
    subprocess.run([sys.executable, "-m", "shoal", "migrate", "--backend-url", sqlite_url],
                   check=True, capture_output=True)  # fmt: skip
    process = subprocess.Popen([*command, "--board-port", str(port)], env=env)
    address = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):  # bounded: 20 s at most for the process to listen
            if process.poll() is not None:
                raise RuntimeError(f"shoal board exited with {process.returncode}")
            try:
                httpx.get(f"{address}/", headers=basic(*ADMIN), timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield address
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
async def backend(sqlite_url: str) -> AsyncIterator[Backend]:
    async with open_backend(sqlite_url) as opened:
        yield opened


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        # Playwright gives every launch a fresh profile (user data) directory of its own.
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        yield launched
        await launched.close()


async def signed_in(browser: Browser) -> tuple[Page, list[str]]:
    """A page signed in as the admin, and the list the dialogs it opens are written to."""
    context = await browser.new_context(
        http_credentials={"username": ADMIN[0], "password": ADMIN[1]},
        viewport={"width": 1280, "height": 720},
    )
    page = await context.new_page()
    dialogs: list[str] = []

    async def refuse(dialog: object) -> None:
        dialogs.append(dialog.message)  # type: ignore[attr-defined]
        await dialog.dismiss()  # type: ignore[attr-defined]

    page.on("dialog", refuse)
    return page, dialogs


async def shot(page: Page, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("BOARD_SCREENSHOTS") or tmp_path)
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


async def test_hostile_text_never_runs_and_pages_update_live(
    board_process: str, backend: Backend, browser: Browser, tmp_path: Path
) -> None:
    hostile = dataclasses.replace(
        task(name=f"mail.send{HOSTILE}", payload=f'{{"to": "{HOSTILE}"}}'.encode()),
        metadata={"origin": HOSTILE},
    )
    await backend.push([hostile, *(task(q, n) for q in ("mail", "pdf") for n in ("a.b", "c.d"))])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.fail(
        [Failure(claim.lease, f"Traceback (most recent call last):\n{HOSTILE}", None)]
    )
    worker = WorkerInfo(id="worker-1", host="node-a", pid=7, queues=("mail", "pdf"), concurrency=8)
    await backend.heartbeat(worker, [], 30)
    [done] = await backend.claim(["pdf"], "w1", 1, 30)
    kept = KeptValue(done.task.id, HOSTILE.encode(), utcnow() + timedelta(hours=1))
    await backend.ack([done.lease], [kept])  # a bar on the pdf queue's chart
    spec = ScheduleSpec("nightly", f"report{HOSTILE}", "default", "every 60s")
    await backend.register_schedules("app", [spec])
    page, dialogs = await signed_in(browser)

    await page.goto(f"{board_process}/")
    ready = page.locator("tr", has_text="mail").locator("td").nth(1)
    await expect(ready).to_have_text("2")
    await shot(page, "queues", tmp_path)
    await backend.push([task("mail") for _ in range(3)])
    await expect(ready).to_have_text("5", timeout=5000)  # no reload: the page updated itself

    await page.goto(f"{board_process}/tasks")
    await expect(page.locator("tbody tr")).to_have_count(8)
    await shot(page, "tasks", tmp_path)
    await page.goto(f"{board_process}/tasks/{hostile.id}")
    await expect(page.locator("pre.error")).to_contain_text(HOSTILE)
    await expect(page.locator("pre.payload")).to_contain_text(HOSTILE)
    await shot(page, "task", tmp_path)
    await page.goto(f"{board_process}/workers")
    await expect(page.locator("td", has_text="node-a")).to_have_count(1)
    await shot(page, "workers", tmp_path)
    await page.goto(f"{board_process}/schedules")
    await expect(page.locator("td", has_text="nightly")).to_have_count(1)
    await shot(page, "schedules", tmp_path)
    await page.goto(f"{board_process}/tasks/{done.task.id}")
    await expect(page.locator("pre.result")).to_contain_text(HOSTILE)

    pages = ["/", "/tasks", f"/tasks/{hostile.id}", f"/tasks/{hostile.id}/retry", "/schedules"]
    for path in [*pages, f"/tasks/{done.task.id}"]:
        await page.goto(f"{board_process}{path}")
        assert await page.evaluate("window.pwned") is None, path
    assert dialogs == []


async def test_an_action_goes_through_its_confirmation(
    board_process: str, backend: Backend, browser: Browser, tmp_path: Path
) -> None:
    dead = task()
    await backend.push([dead])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.fail([Failure(claim.lease, "boom", None)])
    page, _ = await signed_in(browser)
    await page.goto(f"{board_process}/tasks/{dead.id}")
    await page.get_by_text("Retry…").click()
    await expect(page.locator("h1")).to_have_text("Retry this task?")
    await shot(page, "confirm", tmp_path)
    stored = await backend.get(dead.id)
    assert stored is not None and stored.status == "dead"  # nothing happens before "yes"
    await page.locator("#confirm").click()
    await expect(page.locator(".notice")).to_have_text("retry: done")
    await expect(page.locator(".status").first).to_have_text("queued")


async def test_the_board_refuses_to_start_without_credentials(sqlite_url: str) -> None:
    command = [sys.executable, "-m", "shoal", "board", "--backend-url", sqlite_url]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOAL_")}
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert b"serves no one anonymously" in done.stderr
