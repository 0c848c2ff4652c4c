"""The schedules page: every stored periodic schedule with its state, last run and next
tick; an admin pauses and resumes one (a POST, so the gate asks for the admin role and
the CSRF token). Triggering needs the app's code (``shoal schedules trigger --app``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from shoal.backends import Backend
from shoal.board.api import BadRequest
from shoal.board.views import render
from shoal.core.errors import ScheduleNotFound

SWITCHES = {"pause": True, "resume": False}
"""The schedule actions the board offers, and the paused state each sets."""


async def schedules(request: Request) -> Response:
    backend: Backend = request.app.state.backend
    records = await backend.schedules()
    return render(request, "schedules.html", page="schedules", schedules=records)


async def switch(request: Request) -> Response:
    name, action = request.path_params["name"], request.path_params["action"]
    if action not in SWITCHES:
        raise BadRequest(f"unknown schedule action {action!r}: {', '.join(SWITCHES)}")
    backend: Backend = request.app.state.backend
    try:
        await backend.pause_schedule(name, SWITCHES[action])
    except ScheduleNotFound:
        return render(request, "missing.html", 404, page="schedules", task_id=name)
    return RedirectResponse(request.url_for("schedules"), 303)


routes = [
    Route("/schedules", schedules, name="schedules"),
    Route("/schedules/{name}/{action}", switch, methods=["POST"], name="switch_schedule"),
]
