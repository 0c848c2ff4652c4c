"""Tasks pushed by name: a producer in another service enqueues without the handler's code.

The payload is the handler's keyword arguments as a JSON object. When the name is registered
in the pushing app, its codec checks them at the call site, as a typed push would; when it is
not, only that they form a JSON object is checked here, and the worker checks them against
the handler's type hints before running, as for every task: an unknown name or arguments
that do not fit end the task dead with the reason, never crash the worker.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shoal.app.handles import TaskHandle
from shoal.app.limits import NO_SPEC
from shoal.app.results import ResultCodec
from shoal.app.tasks import PushOptions, new_task
from shoal.core.errors import ConfigurationError, PayloadInvalid, PayloadUndecodable
from shoal.core.models import NewTask

if TYPE_CHECKING:
    from shoal.app import App

Arguments = Mapping[str, Any] | bytes | str | None
"""Keyword arguments: a mapping of JSON-able values, or a JSON object already encoded."""


def prepare_by_name(
    app: App, name: str, arguments: Arguments, queue: str | None, options: PushOptions
) -> NewTask:
    """The stored form of a call to the task ``name`` on ``queue``."""
    definition = app.tasks.get(name)
    if definition is not None:
        if arguments is None or isinstance(arguments, Mapping):
            payload = definition.codec.encode((), arguments or {})
        else:
            payload = definition.codec.encode_json(arguments)
        return definition.prepare(payload, options, queue=queue)
    if queue is None:
        raise ConfigurationError(
            f"the task {name!r} is not registered in this app, so its queue is not known: "
            f"give queue=... (the queue its workers serve)"
        )
    return new_task(
        name,
        queue,
        _json_object(name, arguments),
        options,
        max_attempts=app.default_retry.max_attempts,
        priority=0,
        limits=NO_SPEC.stamp(name, app.queue_rates.get(queue), {}),
    )


def handle_by_name(app: App, name: str, task_id: str) -> TaskHandle[Any]:
    """The handle of a task pushed by name: its handler's, when the name is registered here;
    otherwise one whose result is the kept JSON value, undecoded by any annotation."""
    definition = app.tasks.get(name)
    if definition is not None:
        return definition.handle(task_id)
    return TaskHandle(app, task_id, name, ResultCodec(None, name))


def _json_object(name: str, arguments: Arguments) -> bytes:
    if arguments is None or isinstance(arguments, Mapping):
        try:
            return json.dumps(dict(arguments or {}), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise PayloadInvalid(f"{name}: the arguments cannot be encoded as JSON: {exc}") from exc
    try:
        decoded = json.loads(arguments)
    except ValueError as exc:
        raise PayloadUndecodable(f"{name}: the payload is not valid JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise PayloadInvalid(
            f"{name}: the payload must be a JSON object of keyword arguments, "
            f"not {type(decoded).__name__}"
        )
    return arguments.encode() if isinstance(arguments, str) else arguments
