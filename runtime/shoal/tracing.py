"""OpenTelemetry tracing: a producer span per push, a consumer span per attempt, one trace.

``shoal.tracing.instrument(app)`` turns it on for one app (in the producer and in the
worker's process alike); nothing of OpenTelemetry is imported until this module is, and
this module needs the ``otel`` extra (``pip install 'shoal[otel]'``: the API only; the SDK
and an exporter are the application's choice, as OpenTelemetry intends).

Spans follow the messaging semantic conventions (the 1.26+ names):

- **push** (kind PRODUCER, named ``push <queue>``): ``messaging.system = "shoal"``,
  ``messaging.operation.type = "send"``, ``messaging.operation.name = "push"``,
  ``messaging.destination.name`` (the queue), and for one task ``messaging.message.id``
  (the task id), for a batch ``messaging.batch.message_count``; ``shoal.task.name``. Its
  context is injected into every pushed task's ``metadata`` with the global propagator
  (W3C ``traceparent`` and ``tracestate`` by default), so it is stored with the task.
- **process** (kind CONSUMER, named ``process <queue>``): the same attributes with
  ``messaging.operation.type = "process"``, and ``shoal.task.attempt``; its parent (and a
  link) is the context read back from the task's metadata, so push and run are one trace.
  It covers the handler's execution (a wrapper around it, :mod:`shoal.app.wrappers`): the
  handler's own spans are its children, and a failure is recorded on it as an exception
  with an error status.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from importlib import metadata
from typing import Any

from shoal.app import App
from shoal.core.errors import MissingExtra
from shoal.core.models import NewTask, Task

try:
    from opentelemetry import propagate, trace
except ImportError as exc:  # tests/unit/test_tracing_optional.py blocks the import
    raise MissingExtra("shoal.tracing", "otel") from exc

SYSTEM = "shoal"


def instrument(app: App, *, tracer_provider: trace.TracerProvider | None = None) -> None:
    """Trace ``app``'s pushes and its tasks' runs (once: a second call changes nothing).

    ``tracer_provider`` defaults to OpenTelemetry's global one.
    """
    if any(isinstance(w, _Traced) for w in (*app.wrappers.push, *app.wrappers.run)):
        return
    tracer = trace.get_tracer(SYSTEM, metadata.version("shoal"), tracer_provider)
    app.wrappers.push.append(_TracedPush(tracer))
    app.wrappers.run.append(_TracedRun(tracer))


class _Traced:
    def __init__(self, tracer: trace.Tracer) -> None:
        self.tracer = tracer


class _TracedPush(_Traced):
    @contextlib.contextmanager
    def __call__(self, tasks: Sequence[NewTask]) -> Iterator[Sequence[NewTask]]:
        queues = {task.queue for task in tasks}
        names = {task.name for task in tasks}
        queue = queues.pop() if len(queues) == 1 else None
        attributes: dict[str, Any] = {
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "push",
        }
        if queue is not None:
            attributes["messaging.destination.name"] = queue
        if len(tasks) == 1:
            attributes["messaging.message.id"] = tasks[0].id
        else:
            attributes["messaging.batch.message_count"] = len(tasks)
        if len(names) == 1:
            attributes["shoal.task.name"] = next(iter(names))
        span_name = f"push {queue}" if queue is not None else "push"
        with self.tracer.start_as_current_span(
            span_name, kind=trace.SpanKind.PRODUCER, attributes=attributes
        ):
            carrier: dict[str, str] = {}
            propagate.inject(carrier)
            yield [
                dataclasses.replace(task, metadata={**task.metadata, **carrier}) for task in tasks
            ]


class _TracedRun(_Traced):
    @contextlib.contextmanager
    def __call__(self, task: Task) -> Iterator[None]:
        parent = propagate.extract(dict(task.metadata))
        origin = trace.get_current_span(parent).get_span_context()
        links = [trace.Link(origin)] if origin.is_valid else []
        with self.tracer.start_as_current_span(
            f"process {task.queue}",
            context=parent,
            kind=trace.SpanKind.CONSUMER,
            links=links,
            attributes={
                "messaging.system": SYSTEM,
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.destination.name": task.queue,
                "messaging.message.id": task.id,
                "shoal.task.name": task.name,
                "shoal.task.attempt": task.attempts,
            },
        ):
            yield
