"""What the board reads and does, and the JSON API over it (``/api/...``).

The HTML views render the same reads (:func:`queue_rows`, :func:`task_page`, ...), so a page
and its API answer never disagree. Every answer names the backend by its redacted URL only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shoal.backends import Backend
from shoal.backends.base import PURGEABLE
from shoal.core.errors import ShoalError, TaskNotFound
from shoal.core.models import QueueStats, Task, TaskStatus, WorkerInfo, utcnow
from shoal.core.urls import redact

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
ACTIONS = ("retry", "cancel", "purge")


class BadRequest(ShoalError):
    """The request's parameters are invalid."""


@dataclass(frozen=True, slots=True)
class TaskFilters:
    """A task listing as the board's forms and links ask for it."""

    statuses: tuple[TaskStatus, ...] = ()
    queue: str | None = None
    name: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before: str | None = None
    limit: int = PAGE_SIZE

    @classmethod
    def parse(cls, request: Request) -> TaskFilters:
        params = request.query_params
        try:
            statuses = tuple(TaskStatus(s) for s in params.getlist("status") if s)
        except ValueError as exc:
            raise BadRequest(f"unknown status: {exc}") from exc
        limit = _number(params.get("limit"), PAGE_SIZE)
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise BadRequest(f"limit must lie in 1..{MAX_PAGE_SIZE}")
        return cls(
            statuses=statuses,
            queue=params.get("queue") or None,
            name=params.get("name") or None,
            since=_time(params.get("since")),
            until=_time(params.get("until")),
            before=params.get("before") or None,
            limit=limit,
        )

    def query(self, **changes: object) -> list[tuple[str, str]]:
        """These filters as query parameters, for links to the next page."""
        values: dict[str, Any] = {
            "queue": self.queue, "name": self.name, "before": self.before,
            "since": self.since and self.since.isoformat(),
            "until": self.until and self.until.isoformat(),
        }  # fmt: skip
        values.update(changes)
        pairs = [("status", str(s)) for s in self.statuses]
        return pairs + [(k, str(v)) for k, v in values.items() if v]


def _number(raw: str | None, default: int) -> int:
    try:
        return default if not raw else int(raw)
    except ValueError as exc:
        raise BadRequest(f"not a number: {raw!r}") from exc


def _time(raw: str | None) -> datetime | None:
    """An ISO time; one without a zone (an HTML datetime-local input) is UTC."""
    if not raw:
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise BadRequest(f"not an ISO time: {raw!r}") from exc
    return at if at.tzinfo else at.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[Task]
    next_before: str | None
    """The cursor of the next page, or None on the last one."""


async def queue_rows(backend: Backend) -> list[QueueStats]:
    names = await backend.queues()
    stats = await backend.stats(names) if names else {}
    return [stats[name] for name in names]


async def task_page(backend: Backend, filters: TaskFilters) -> TaskPage:
    # One task more than the page tells whether there is a next page, in the same query.
    found = await backend.list_tasks(
        queue=filters.queue, statuses=filters.statuses, name=filters.name,
        since=filters.since, until=filters.until, before=filters.before,
        limit=filters.limit + 1,
    )  # fmt: skip
    shown = found[: filters.limit]
    more = len(found) > filters.limit
    return TaskPage(shown, shown[-1].id if more and shown else None)


async def act(backend: Backend, task_id: str, action: str, *, by: str) -> bool:
    """Retry or cancel one task (``by``: who asked); False when its state does not allow it."""
    if action == "retry":
        return await backend.retry(task_id)
    if action == "cancel":
        return await backend.cancel(task_id, by=by)
    if action == "purge":
        found = await backend.get(task_id)
        if found is None:
            raise TaskNotFound(task_id)
        return found.status in PURGEABLE and await backend.purge_tasks([task_id]) == 1
    raise BadRequest(f"unknown action {action!r}: {', '.join(ACTIONS)}")


def asker(request: Request) -> str:
    """Who is acting, as a task's ``cancelled_by`` records it: the signed-in name."""
    return f"{request.scope['principal'].name} (board)"


def purge_statuses(raw: list[str]) -> list[TaskStatus]:
    try:
        statuses = [TaskStatus(s) for s in raw]
    except ValueError as exc:
        raise BadRequest(f"unknown status: {exc}") from exc
    if not statuses or not set(statuses) <= PURGEABLE:
        raise BadRequest("purge deletes finished tasks only: done, dead, cancelled")
    return statuses


def payload_text(payload: bytes) -> tuple[str, str]:
    """The payload as shown, and how: pretty JSON, text, or base64 for bytes that are not."""
    try:
        text = payload.decode()
    except UnicodeDecodeError:
        return base64.b64encode(payload).decode(), "base64"
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False), "json"
    except ValueError:
        return text, "text"


def timeline(task: Task) -> list[tuple[datetime, str]]:
    """What a task's timestamps say about its life, in order. Backends keep the times of a
    task's states, not a log of every transition: this is the story they tell."""
    events = [(task.created_at, "created")]
    if task.run_at > task.created_at:
        events.append((task.run_at, "due"))
    if task.finished_at is not None:
        events.append((task.finished_at, str(task.status)))
    elif task.updated_at > task.created_at:
        events.append((task.updated_at, f"{task.status} (last change)"))
    return sorted(events, key=lambda e: e[0])


def task_json(task: Task, *, full: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": task.id, "queue": task.queue, "name": task.name, "status": str(task.status),
        "priority": task.priority, "attempts": task.attempts,
        "max_attempts": task.max_attempts, "run_at": task.run_at.isoformat(),
        "created_at": task.created_at.isoformat(), "updated_at": task.updated_at.isoformat(),
        "finished_at": task.finished_at and task.finished_at.isoformat(),
        "last_error": task.last_error, "worker_id": task.worker_id,
    }  # fmt: skip
    if full:
        payload, encoding = payload_text(task.payload)
        body.update(
            payload=payload, payload_encoding=encoding, metadata=dict(task.metadata),
            idempotency_key=task.idempotency_key, lease_expirations=task.lease_expirations,
            timeline=[{"at": at.isoformat(), "state": state} for at, state in timeline(task)],
        )  # fmt: skip
    return body


def queue_json(stats: QueueStats) -> dict[str, Any]:
    return {
        "queue": stats.queue, "ready": stats.ready, "scheduled": stats.scheduled,
        "running": stats.running, "dead": stats.dead,
        "oldest_ready_age": stats.oldest_ready_age, "held_back": stats.held_back,
    }  # fmt: skip


def worker_json(worker: WorkerInfo) -> dict[str, Any]:
    return {
        "id": worker.id, "host": worker.host, "pid": worker.pid, "queues": list(worker.queues),
        "concurrency": worker.concurrency, "in_flight": worker.in_flight,
        "started_at": worker.started_at.isoformat(), "last_seen": worker.last_seen.isoformat(),
        "seconds_since_heartbeat": round((utcnow() - worker.last_seen).total_seconds(), 1),
        "version": worker.version,
    }  # fmt: skip


def _backend(request: Request) -> Backend:
    backend: Backend = request.app.state.backend
    return backend


def answer(request: Request, body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse({"backend": redact(_backend(request).url), **body}, status)


async def queues(request: Request) -> JSONResponse:
    backend = _backend(request)
    rows = await queue_rows(backend)
    counts = await backend.finish_counts([s.queue for s in rows])
    body = [{**queue_json(s), "last_hour": counts[s.queue].to_json()} for s in rows]
    return answer(request, {"queues": body})


async def tasks(request: Request) -> JSONResponse:
    page = await task_page(_backend(request), TaskFilters.parse(request))
    return answer(
        request, {"tasks": [task_json(t) for t in page.tasks], "next_before": page.next_before}
    )


async def task(request: Request) -> JSONResponse:
    found = await _backend(request).get(request.path_params["task_id"])
    if found is None:
        return answer(request, {"error": "no task has this id"}, 404)
    return answer(request, {"task": task_json(found, full=True)})


async def workers(request: Request) -> JSONResponse:
    found = await _backend(request).workers()
    return answer(request, {"workers": [worker_json(w) for w in found]})


async def task_action(request: Request) -> JSONResponse:
    task_id, action = request.path_params["task_id"], request.path_params["action"]
    try:
        done = await act(_backend(request), task_id, action, by=asker(request))
    except TaskNotFound:
        return answer(request, {"error": "no task has this id"}, 404)
    return answer(request, {"task_id": task_id, "action": action, "done": done})


async def purge(request: Request) -> JSONResponse:
    form = await request.form()
    statuses = purge_statuses([str(v) for v in form.getlist("status")])
    queue = str(form.get("queue") or "") or None
    deleted = await _backend(request).purge(queue=queue, statuses=statuses)
    return answer(request, {"deleted": deleted})


routes = [  # named apart from the views' routes, which url_for() finds by name
    Route("/api/queues", queues, name="api_queues"),
    Route("/api/tasks", tasks, name="api_tasks"),
    Route("/api/tasks/{task_id}", task, name="api_task"),
    Route("/api/workers", workers, name="api_workers"),
    Route("/api/tasks/{task_id}/{action}", task_action, methods=["POST"], name="api_action"),
    Route("/api/purge", purge, methods=["POST"], name="api_purge"),
]
