"""The HTML pages: queues, tasks, one task, workers, and the confirmations of actions.

Templates are Jinja2 with autoescaping on for everything: payloads, errors, names and
metadata are the users' text and are always shown escaped. Actions are POST forms carrying
the CSRF token (:mod:`shoal.board.auth`); each is reached through a confirmation page.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from shoal.backends import Backend
from shoal.board import api
from shoal.board.auth import CSRF_FIELD, Principal, csrf_token
from shoal.board.charts import finish_chart
from shoal.board.detail import allowed_actions, kept_value
from shoal.board.live import wants_fragment
from shoal.core.errors import TaskNotFound
from shoal.core.models import FINISHED, TaskStatus, utcnow
from shoal.core.urls import redact

_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(resources.files("shoal.board") / "templates")),
    autoescape=True,  # every template, whatever its name: nothing user-supplied is trusted
    undefined=jinja2.StrictUndefined,
)


def render(request: Request, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    principal: Principal = request.scope["principal"]
    settings = request.app.state.settings
    backend: Backend = request.app.state.backend
    html = _templates.get_template(template).render(
        request=request,
        principal=principal,
        backend_url=redact(backend.url),
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_token(settings.csrf_secret, principal),
        refresh_ms=int(settings.refresh_seconds * 1000),
        fragment=wants_fragment(request),
        statuses=list(TaskStatus),
        now=utcnow(),
        **values,
    )
    return HTMLResponse(html, status)


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


async def queues(request: Request) -> Response:
    backend = _backend(request)
    rows = await api.queue_rows(backend)
    counts = await backend.finish_counts([q.queue for q in rows])
    charts = {queue: finish_chart(c) for queue, c in counts.items()}
    return render(request, "queues.html", page="queues", queues=rows, charts=charts)


async def tasks(request: Request) -> Response:
    task_id = request.query_params.get("id", "").strip()
    if task_id:
        return RedirectResponse(request.url_for("task", task_id=task_id), 303)
    filters = api.TaskFilters.parse(request)
    page = await api.task_page(_backend(request), filters)
    return render(request, "tasks.html", page="tasks", filters=filters, listing=page)


async def task(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    found = await _backend(request).get(task_id)
    if found is None:
        return render(request, "missing.html", 404, page="tasks", task_id=task_id)
    payload, encoding = api.payload_text(found.payload)
    result = await _backend(request).result(task_id) if found.status in FINISHED else None
    return render(
        request, "task.html", page="tasks", task=found, payload=payload,
        payload_encoding=encoding, timeline=api.timeline(found),
        actions=allowed_actions(found), kept=kept_value(result),
    )  # fmt: skip


async def workers(request: Request) -> Response:
    found = await _backend(request).workers()
    return render(request, "workers.html", page="workers", workers=found)


async def confirm_action(request: Request) -> Response:
    task_id, action = request.path_params["task_id"], request.path_params["action"]
    if action not in api.ACTIONS:
        raise api.BadRequest(f"unknown action {action!r}")
    found = await _backend(request).get(task_id)
    if found is None:
        return render(request, "missing.html", 404, page="tasks", task_id=task_id)
    return render(request, "confirm.html", page="tasks", task=found, action=action)


async def do_action(request: Request) -> Response:
    task_id, action = request.path_params["task_id"], request.path_params["action"]
    try:
        done = await api.act(_backend(request), task_id, action, by=api.asker(request))
    except TaskNotFound:
        return render(request, "missing.html", 404, page="tasks", task_id=task_id)
    outcome = "done" if done else "refused"
    if action == "purge" and done:
        return RedirectResponse(request.url_for("tasks"), 303)
    url = request.url_for("task", task_id=task_id).include_query_params(
        action=action, outcome=outcome
    )
    return RedirectResponse(url, 303)


async def confirm_purge(request: Request) -> Response:
    statuses = api.purge_statuses(request.query_params.getlist("status"))
    queue = request.query_params.get("queue") or None
    return render(request, "purge.html", page="tasks", purge_statuses=statuses, queue=queue)


async def do_purge(request: Request) -> Response:
    form = await request.form()
    statuses = api.purge_statuses([str(v) for v in form.getlist("status")])
    queue = str(form.get("queue") or "") or None
    deleted = await _backend(request).purge(queue=queue, statuses=statuses)
    return render(request, "purged.html", page="tasks", deleted=deleted, queue=queue)


routes = [
    Route("/", queues, name="queues"),
    Route("/tasks", tasks, name="tasks"),
    Route("/tasks/{task_id}", task, name="task"),
    Route("/workers", workers, name="workers"),
    Route("/tasks/{task_id}/{action}", confirm_action, name="confirm_action"),
    Route("/tasks/{task_id}/{action}", do_action, methods=["POST"], name="do_action"),
    Route("/purge", confirm_purge, name="confirm_purge"),
    Route("/purge", do_purge, methods=["POST"], name="do_purge"),
]
