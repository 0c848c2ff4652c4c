"""Results: a handler's return value as JSON, checked against its return annotation both ways.

The twin of :mod:`shoal.app.payloads`, and built the same way (pydantic): the worker encodes
what the handler returned (a value that does not fit the annotation, or cannot be JSON,
fails the attempt with :class:`ResultInvalid` saying so), and a producer's handle decodes
the stored bytes back into the annotated type, so ``TaskHandle[int].result()`` is an ``int``
to mypy and at run time. A codec is only built for tasks that keep their result, so a task
returning something JSON cannot hold still works as long as it does not ask to keep it.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from datetime import timedelta
from typing import Any, Generic, TypeVar

import pydantic
import pydantic_core

from shoal.app.payloads import describe
from shoal.core.errors import ConfigurationError, ResultInvalid

R = TypeVar("R")

KeepResult = timedelta | float
"""How long a result is kept: a ``timedelta`` or seconds."""


def keep_seconds(keep: KeepResult | None, *, what: str) -> float | None:
    """``keep_result`` as seconds, None for "not kept" (None or zero)."""
    if keep is None:
        return None
    seconds = keep.total_seconds() if isinstance(keep, timedelta) else float(keep)
    if seconds < 0 or seconds != seconds:  # NaN is not a duration either
        raise ConfigurationError(f"{what}: keep_result must be a duration of 0 or more")
    return seconds or None


class ResultCodec(Generic[R]):
    """Encodes and decodes the return value of one handler."""

    def __init__(self, function: Callable[..., Any] | None, task_name: str) -> None:
        # An ``async def``'s return annotation is already what its coroutine returns. No
        # function: a task pushed by name that this app does not register, whose value is
        # whatever JSON its worker kept.
        hints = {} if function is None else typing.get_type_hints(function)
        annotation = hints.get("return", Any)
        self.task_name = task_name
        self.annotation = annotation
        try:
            self._adapter: pydantic.TypeAdapter[R] = pydantic.TypeAdapter(annotation)
        except pydantic.PydanticSchemaGenerationError as exc:
            raise ConfigurationError(
                f"task {task_name} keeps its result, but its return annotation "
                f"{_name(annotation)} cannot be stored as JSON: annotate it with a type pydantic "
                "can serialise (int, str, a dataclass, a pydantic model...)"
            ) from exc

    def encode(self, value: object) -> bytes:
        """Validate a return value against the annotation and return it as JSON bytes."""
        try:
            checked = self._adapter.validate_python(value)
            return self._adapter.dump_json(checked)
        except pydantic.ValidationError as exc:
            raise ResultInvalid(
                f"{self.task_name} returned a value that does not fit its return annotation "
                f"{_name(self.annotation)}: {describe(exc)}"
            ) from exc
        except pydantic_core.PydanticSerializationError as exc:
            raise ResultInvalid(
                f"{self.task_name} returned a value that cannot be stored as JSON: {exc}"
            ) from exc

    def decode(self, data: bytes) -> R:
        """Stored bytes → the annotated type (the annotation of the producer's code)."""
        try:
            return self._adapter.validate_json(data)
        except pydantic.ValidationError as exc:
            raise ResultInvalid(
                f"the stored result of {self.task_name} does not fit its return annotation "
                f"{_name(self.annotation)} (did the code change since it ran?): {describe(exc)}"
            ) from exc


def _name(annotation: object) -> str:
    return getattr(annotation, "__name__", None) or repr(annotation)
