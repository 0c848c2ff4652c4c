"""The board over every SQL and Redis backend (matrix: sqlite, postgres, redis): sign-in and
roles, CSRF on every action, escaping of hostile text, redacted URLs, keyset pages, actions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re

import httpx
import pytest

from shoal.backends import Backend, open_backend
from shoal.board import BoardSettings, create_app
from shoal.board.auth import CSRF_FIELD
from shoal.core.ids import new_id
from shoal.core.models import Failure, NewTask, WorkerInfo, utcnow
from tests.board.conftest import (
    ADMIN,
    ADMIN_TOKEN,
    BOARD_URL,
    CREDENTIALS,
    VIEWER,
    VIEWER_TOKEN,
    basic,
    bearer,
)
from tests.servers.ports import free_port

SECRET = "pa55-in-the-url"

HOSTILE = '<script>window.pwned=1</script><img src=x onerror="window.pwned=1">'
"""Text that would run if shown unescaped."""

PAGES = ["/", "/tasks", "/workers", "/api/queues", "/api/tasks", "/api/workers"]


def task(queue: str = "default", name: str = "mail.send", payload: bytes = b'{"to": 1}') -> NewTask:
    return NewTask(
        id=new_id(), queue=queue, name=name, payload=payload, run_at=utcnow(), max_attempts=1
    )


def csrf_of(html: str) -> str:
    found = re.search(rf'name="{CSRF_FIELD}" value="([0-9a-f]+)"', html)
    assert found, "the confirmation page carries a CSRF token"
    return found[1]


@pytest.mark.parametrize("path", [*PAGES, "/static/board.js"])
async def test_nothing_is_served_anonymously(anonymous: httpx.AsyncClient, path: str) -> None:
    answer = await anonymous.get(path)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"].startswith("Basic")
    wrong = await anonymous.get(path, headers=basic(ADMIN[0], "not-the-password"))
    assert wrong.status_code == 401
    assert (await anonymous.get(path, headers=bearer("not-a-token"))).status_code == 401


async def test_a_viewer_reads_but_cannot_act(
    anonymous: httpx.AsyncClient, backend: Backend
) -> None:
    [task_id] = await backend.push([task()])
    for headers in (basic(*VIEWER), bearer(VIEWER_TOKEN)):
        assert (await anonymous.get(f"/tasks/{task_id}", headers=headers)).status_code == 200
        page = await anonymous.get(f"/tasks/{task_id}", headers=headers)
        assert "Cancel…" not in page.text
        refused = await anonymous.post(f"/api/tasks/{task_id}/cancel", headers=headers)
        assert refused.status_code == 403
    stored = await backend.get(task_id)
    assert stored is not None and stored.status == "queued"


async def test_every_action_needs_the_csrf_token(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    [task_id] = await backend.push([task()])
    for path, form in (
        (f"/tasks/{task_id}/cancel", {}),
        (f"/api/tasks/{task_id}/cancel", {}),
        ("/purge", {"status": "done"}),
        ("/api/purge", {"status": "done"}),
    ):
        assert (await admin.post(path, data=form)).status_code == 403
        wrong = await admin.post(path, data={**form, CSRF_FIELD: "0" * 64})
        assert wrong.status_code == 403
    stored = await backend.get(task_id)
    assert stored is not None and stored.status == "queued"

    confirmation = await admin.get(f"/tasks/{task_id}/cancel")
    assert "Yes, cancel" in confirmation.text
    foreign = await admin.post(
        f"/tasks/{task_id}/cancel",
        data={CSRF_FIELD: csrf_of(confirmation.text)},
        headers={"origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    done = await admin.post(
        f"/tasks/{task_id}/cancel", data={CSRF_FIELD: csrf_of(confirmation.text)}
    )
    assert done.status_code == 303
    stored = await backend.get(task_id)
    assert stored is not None and stored.status == "cancelled"


async def test_a_bearer_token_acts_without_csrf(
    anonymous: httpx.AsyncClient, backend: Backend
) -> None:
    """Browsers never send a bearer token by themselves: no cross-site request can carry it."""
    [task_id] = await backend.push([task()])
    headers = bearer(ADMIN_TOKEN)
    answer = await anonymous.post(f"/api/tasks/{task_id}/cancel", headers=headers)
    assert answer.json()["done"] is True
    retried = await anonymous.post(f"/api/tasks/{task_id}/retry", headers=headers)
    assert retried.json()["done"] is True
    purged = await anonymous.post("/api/purge", data={"status": "queued"}, headers=headers)
    assert purged.status_code == 400  # unfinished work is never purged


async def test_retry_and_purge_through_their_confirmations(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    [task_id] = await backend.push([task()])
    [claim] = await backend.claim(["default"], "w1", 1, 30)
    await backend.fail([Failure(claim.lease, "boom", None)])
    confirmation = await admin.get(f"/tasks/{task_id}/retry")
    token = csrf_of(confirmation.text)
    answer = await admin.post(f"/tasks/{task_id}/retry", data={CSRF_FIELD: token})
    assert answer.status_code == 303
    assert answer.headers["location"].endswith(f"/tasks/{task_id}?action=retry&outcome=done")
    [again] = await backend.claim(["default"], "w1", 1, 30)
    await backend.ack([again.lease])

    asked = await admin.get("/purge", params={"status": "done", "queue": "default"})
    assert "Yes, purge" in asked.text
    purged = await admin.post(
        "/purge", data={"status": "done", "queue": "default", CSRF_FIELD: csrf_of(asked.text)}
    )
    assert "1 finished tasks deleted" in purged.text
    assert await backend.get(task_id) is None


async def test_hostile_text_is_shown_escaped_everywhere(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    hostile = dataclasses.replace(
        task(queue=f"q{HOSTILE}", name=f"t{HOSTILE}", payload=HOSTILE.encode()),
        metadata={HOSTILE: HOSTILE},
        idempotency_key=HOSTILE,
    )
    await backend.push([hostile])
    [claim] = await backend.claim([hostile.queue], "w1", 1, 30)
    await backend.fail([Failure(claim.lease, f"Traceback:\n{HOSTILE}", None)])
    pages = ["/", "/tasks", f"/tasks/{hostile.id}", f"/tasks/{hostile.id}/retry"]
    pages += [f"/tasks?queue={hostile.queue}", "/purge?status=dead&queue=" + hostile.queue]
    for path in pages:
        answer = await admin.get(path)
        assert answer.status_code == 200, path
        assert "<script>window.pwned" not in answer.text, path
        assert "<img src=x" not in answer.text, path
    detail = (await admin.get(f"/tasks/{hostile.id}")).text
    assert detail.count("&lt;script&gt;window.pwned=1&lt;/script&gt;") >= 5  # every field
    api = (await admin.get(f"/api/tasks/{hostile.id}")).json()["task"]
    assert api["payload"] == HOSTILE and api["last_error"].endswith(HOSTILE)
    assert (await admin.get("/api/tasks")).headers["content-type"] == "application/json"


async def test_every_answer_has_a_policy_that_runs_no_inline_script(
    admin: httpx.AsyncClient,
) -> None:
    for path in PAGES:
        policy = (await admin.get(path)).headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert "frame-ancestors 'none'" in policy


async def test_the_backend_url_is_redacted_on_every_page(
    admin: httpx.AsyncClient, backend: Backend, board_backend_url: str
) -> None:
    await backend.push([task()])
    assert backend.url in (await admin.get("/")).text
    secrets = [p for p in re.findall(r"//[^:/@]*:([^@]+)@", board_backend_url) if p != "***"]
    answers = [await admin.get(path) for path in PAGES]
    answers.append(await admin.get("/tasks", params={"since": "not a time"}))
    assert [a.json()["backend"] for a in answers if "/api/" in str(a.url)] == [backend.url] * 3
    for answer in answers:
        for secret in secrets:
            assert secret not in answer.text, answer.url


async def test_keyset_pages_walk_every_task_once(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    pushed = [task(queue="a" if n % 3 else "b", name=f"t{n % 2}") for n in range(23)]
    await backend.push(pushed)
    seen, before = [], None
    while True:
        params = {"limit": "5", "status": "queued", **({"before": before} if before else {})}
        page = (await admin.get("/api/tasks", params=params)).json()
        seen += [t["id"] for t in page["tasks"]]
        before = page["next_before"]
        if before is None:
            break
    assert seen == [t.id for t in reversed(pushed)]
    html = (await admin.get("/tasks", params={"limit": "5", "queue": "a", "name": "t1"})).text
    assert 'rel="next"' in html
    wanted = [t.id for t in reversed(pushed) if t.queue == "a" and t.name == "t1"][:5]
    assert re.findall(r'class="mono" href="[^"]*/tasks/([0-9a-f-]+)"', html) == wanted


async def test_a_time_range_and_an_id_find_tasks(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    old = task()
    await backend.push([old])
    await asyncio.sleep(0.01)  # ids are made to the millisecond
    middle = utcnow()
    await asyncio.sleep(0.01)
    new = task()
    await backend.push([new])
    recent = (await admin.get("/api/tasks", params={"since": middle.isoformat()})).json()
    assert [t["id"] for t in recent["tasks"]] == [new.id]
    earlier = (await admin.get("/api/tasks", params={"until": middle.isoformat()})).json()
    assert [t["id"] for t in earlier["tasks"]] == [old.id]
    found = await admin.get("/tasks", params={"id": old.id})
    assert found.status_code == 303 and found.headers["location"].endswith(f"/tasks/{old.id}")
    missing = await admin.get(f"/tasks/{new_id()}")
    assert missing.status_code == 404
    assert (await admin.get("/api/tasks", params={"status": "nope"})).status_code == 400
    assert (await admin.get("/api/tasks", params={"since": "yesterday"})).status_code == 400


async def test_workers_show_host_queues_in_flight_and_heartbeat(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    me = WorkerInfo(
        id="w-7", host=f"node{HOSTILE}", pid=42, queues=("mail", "pdf"), concurrency=8, in_flight=3,
        version="0.9.1",
    )  # fmt: skip
    await backend.heartbeat(me, [], 30)
    html = (await admin.get("/workers")).text
    assert "node&lt;script&gt;" in html and "mail, pdf" in html and ">0.9.1</td>" in html
    [shown] = (await admin.get("/api/workers")).json()["workers"]
    assert (shown["in_flight"], shown["queues"], shown["pid"]) == (3, ["mail", "pdf"], 42)
    assert shown["version"] == "0.9.1"
    assert 0 <= shown["seconds_since_heartbeat"] < 30


async def test_a_page_fragment_is_its_main_only(admin: httpx.AsyncClient) -> None:
    full = (await admin.get("/")).text
    fragment = (await admin.get("/", headers={"x-shoal-fragment": "main"})).text
    assert full.startswith("<!doctype html>") and "<h1>Queues</h1>" in fragment
    assert "<html" not in fragment and BOARD_URL not in fragment


async def test_an_unreachable_backend_is_a_503_that_names_it_redacted() -> None:
    url = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0?reconnect_timeout=0.2"
    backend = open_backend(url)
    app = create_app(BoardSettings(backend_url=backend.url, credentials=CREDENTIALS), backend)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BOARD_URL) as client:
        for path in ("/api/queues", "/"):
            answer = await client.get(path, headers=basic(*ADMIN))
            assert answer.status_code == 503
            assert "127.0.0.1" in answer.text and SECRET not in answer.text
