"""A task's page: its kept result, traceback and who cancelled it, escaped; the actions its
state allows, purge included (confirmed, with the CSRF token)."""

from __future__ import annotations

from datetime import timedelta

import httpx

from shoal.backends import Backend
from shoal.board.auth import CSRF_FIELD
from shoal.core.models import Failure, KeptValue, utcnow
from tests.board.test_board import HOSTILE, csrf_of, task


async def test_a_done_task_shows_its_result_escaped_and_only_purge(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    await backend.push([task()])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.ack(
        [claim.lease], [KeptValue(claim.task.id, HOSTILE.encode(), utcnow() + timedelta(hours=1))]
    )
    html = (await admin.get(f"/tasks/{claim.task.id}")).text
    assert "<h2>Result" in html and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html
    assert "<script>window.pwned" not in html
    assert "/purge" in html and "/retry" not in html and "/cancel" not in html

    confirm = await admin.get(f"/tasks/{claim.task.id}/purge")
    token = csrf_of(confirm.text)
    refused = await admin.post(f"/tasks/{claim.task.id}/purge", data={})
    assert refused.status_code == 403 and await backend.get(claim.task.id) is not None
    done = await admin.post(f"/tasks/{claim.task.id}/purge", data={CSRF_FIELD: token})
    assert done.status_code == 303 and await backend.get(claim.task.id) is None


async def test_a_dead_task_shows_its_traceback_and_offers_retry(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    await backend.push([task()])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    trace = f"Traceback (most recent call last):\n  ValueError: {HOSTILE}"
    await backend.fail([Failure(claim.lease, f"ValueError: {HOSTILE}", None, trace)])
    html = (await admin.get(f"/tasks/{claim.task.id}")).text
    assert "<h2>Traceback</h2>" in html and "Traceback (most recent call last)" in html
    assert "<img src=x" not in html and "onerror=&#34;" in html
    assert "/retry" in html and "/purge" in html and "/cancel" not in html


async def test_a_cancelled_task_names_who_cancelled_it(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    await backend.push([task()])
    [queued] = await backend.list_tasks()
    assert await backend.cancel(queued.id, by=f"ops{HOSTILE}")
    html = (await admin.get(f"/tasks/{queued.id}")).text
    assert "<dt>cancelled by</dt><dd>ops&lt;script&gt;" in html
    assert "/retry" in html and "/cancel" not in html
