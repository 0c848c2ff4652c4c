"""OpenTelemetry: one trace from push to run, recorded with the SDK's in-memory exporter.

Matrix: the ``backend_url`` fixture (memory, SQLite, PostgreSQL, Redis): the trace context
travels in the stored task's metadata, so every backend must carry it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import shoal.tracing
from shoal import App, RetryPolicy, TaskStatus
from shoal.testing import drain


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


@pytest.fixture
def traced(
    backend_url: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> tuple[App, TracerProvider, InMemorySpanExporter]:
    provider, exporter = spans
    app = App(backend_url)
    shoal.tracing.instrument(app, tracer_provider=provider)
    return app, provider, exporter


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    named = {span.name: span for span in finished}
    assert len(named) == len(finished), [span.name for span in finished]
    return named


async def test_one_trace_spans_the_push_the_run_and_the_handlers_own_spans(
    traced: tuple[App, TracerProvider, InMemorySpanExporter],
) -> None:
    app, provider, exporter = traced
    shoal.tracing.instrument(app, tracer_provider=provider)  # twice: still one span each
    inner = provider.get_tracer("handler")

    @app.task(name="traced.greet", queue="traced")
    async def greet(name: str) -> None:
        with inner.start_as_current_span("greeting"):
            await asyncio.sleep(0)

    @app.task(name="traced.plain", queue="traced")
    def plain() -> None:  # in the worker's thread pool: the consumer span is still current
        with inner.start_as_current_span("plain work"):
            pass

    async with app:
        await app.backend.setup()
        task_id = (await greet.push(name="ada")).id
        stored = await app.backend.get(task_id)
        assert stored is not None
        assert stored.metadata["traceparent"].startswith("00-")
        await plain.push()
        await drain(app)
    pushes = [s for s in exporter.get_finished_spans() if s.name == "push traced"]
    assert len(pushes) == 2
    push = next(
        s for s in pushes if s.attributes and s.attributes["shoal.task.name"] == "traced.greet"
    )
    processes = [s for s in exporter.get_finished_spans() if s.name == "process traced"]
    process = next(
        s for s in processes if s.attributes and s.attributes["messaging.message.id"] == task_id
    )
    named = {s.name: s for s in exporter.get_finished_spans()}

    both = {
        "messaging.system": "shoal",
        "messaging.destination.name": "traced",
        "messaging.message.id": task_id,
        "shoal.task.name": "traced.greet",
    }
    assert push.kind is trace.SpanKind.PRODUCER
    assert dict(push.attributes or {}) == {
        **both,
        "messaging.operation.type": "send",
        "messaging.operation.name": "push",
    }
    assert process.kind is trace.SpanKind.CONSUMER
    assert dict(process.attributes or {}) == {
        **both,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "shoal.task.attempt": 1,
    }
    # One trace: push -> process -> the handler's span.
    assert process.context is not None and push.context is not None
    assert process.context.trace_id == push.context.trace_id
    assert process.parent is not None and process.parent.span_id == push.context.span_id
    assert [link.context.span_id for link in process.links] == [push.context.span_id]
    greeting = named["greeting"]
    assert greeting.parent is not None and greeting.parent.span_id == process.context.span_id
    plain_run = next(s for s in processes if s is not process)
    work = named["plain work"]
    assert plain_run.context is not None
    assert work.parent is not None and work.parent.span_id == plain_run.context.span_id
    assert process.status.status_code is trace.StatusCode.UNSET


async def test_a_failure_is_recorded_on_the_consumer_span(
    traced: tuple[App, TracerProvider, InMemorySpanExporter],
) -> None:
    app, _, exporter = traced

    @app.task(name="traced.boom", queue="traced", retry=RetryPolicy(max_attempts=1))
    async def boom() -> None:
        raise ValueError("the handler failed")

    async with app:
        await app.backend.setup()
        task_id = (await boom.push()).id
        await drain(app)
        stored = await app.backend.get(task_id)
    assert stored is not None and stored.status is TaskStatus.DEAD
    named = by_name(exporter.get_finished_spans())
    process = named["process traced"]
    assert process.status.status_code is trace.StatusCode.ERROR
    [event] = [e for e in process.events if e.name == "exception"]
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    assert event.attributes["exception.message"] == "the handler failed"
    assert named["push traced"].status.status_code is trace.StatusCode.UNSET


def test_a_sync_push_is_a_child_of_the_callers_span_and_a_batch_is_one_span(
    sqlite_url: str, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    app = App(sqlite_url)
    shoal.tracing.instrument(app, tracer_provider=provider)

    @app.task(name="traced.greet", queue="traced")
    async def greet(name: str) -> None: ...

    async def setup() -> None:
        async with app:
            await app.backend.setup()

    asyncio.run(setup())
    request = provider.get_tracer("web")
    done = threading.Event()

    def view() -> None:  # a sync web view in its own thread, inside its request's span
        with request.start_as_current_span("GET /signup"):
            greet.push_many_sync([{"name": "a"}, {"name": "b"}])
        done.set()

    thread = threading.Thread(target=view)
    thread.start()
    thread.join(60)
    assert done.is_set()
    app.call_sync(app.close)
    named = by_name(exporter.get_finished_spans())
    push, get = named["push traced"], named["GET /signup"]
    assert get.context is not None
    assert push.parent is not None and push.parent.span_id == get.context.span_id
    assert (push.attributes or {})["messaging.batch.message_count"] == 2
    assert "messaging.message.id" not in (push.attributes or {})
