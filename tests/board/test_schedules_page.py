"""The schedules page: schedules listed escaped with their state; an admin pauses and
resumes one with the CSRF token, a viewer cannot."""

from __future__ import annotations

import httpx

from shoal.backends import Backend
from shoal.board.auth import CSRF_FIELD
from shoal.core.schedule_records import ScheduleSpec, ScheduleState
from tests.board.conftest import VIEWER, basic
from tests.board.test_board import HOSTILE, csrf_of


async def test_schedules_are_listed_and_an_admin_pauses_and_resumes_one(
    admin: httpx.AsyncClient, anonymous: httpx.AsyncClient, backend: Backend
) -> None:
    spec = ScheduleSpec("nightly", f"report{HOSTILE}", "default", "every 60s")
    await backend.register_schedules("app", [spec])
    html = (await admin.get("/schedules")).text
    assert "nightly" in html and "report&lt;script&gt;" in html and "<script>window" not in html
    assert ">active</span>" in html and "Pause</button>" in html
    as_viewer = {"headers": basic(*VIEWER)}
    assert "Pause</button>" not in (await anonymous.get("/schedules", **as_viewer)).text

    token = csrf_of(html)
    assert (
        await anonymous.post("/schedules/nightly/pause", data={CSRF_FIELD: "x"}, **as_viewer)
    ).status_code == 403
    assert (await admin.post("/schedules/nightly/pause", data={})).status_code == 403
    done = await admin.post("/schedules/nightly/pause", data={CSRF_FIELD: token})
    assert done.status_code == 303
    [paused] = await backend.schedules()
    assert paused.state is ScheduleState.PAUSED
    assert "Resume</button>" in (await admin.get("/schedules")).text

    await admin.post("/schedules/nightly/resume", data={CSRF_FIELD: token})
    [resumed] = await backend.schedules()
    assert resumed.state is ScheduleState.ACTIVE
    missing = await admin.post("/schedules/nope/pause", data={CSRF_FIELD: token})
    assert missing.status_code == 404
