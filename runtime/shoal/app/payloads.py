"""Payloads: a handler's arguments as JSON, checked against its type hints both ways.

At push the caller's arguments are validated (an error names the field) and encoded; before
running, the stored bytes are decoded and validated again, because code changes between the
push and the run: a payload that no longer fits ends the task dead with the reason.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable, Mapping
from typing import Any

import pydantic
import pydantic_core

from shoal.core.context import Context
from shoal.core.errors import PayloadInvalid, PayloadUndecodable


class PayloadCodec:
    """Encodes and decodes the arguments of one handler."""

    def __init__(self, function: Callable[..., Any]) -> None:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function)
        self.context_parameter: str | None = None
        fields: dict[str, Any] = {}
        for name, parameter in signature.parameters.items():
            hint = hints.get(name, Any)
            if hint is Context:
                self.context_parameter = name
                continue
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                raise TypeError(
                    f"task {function.__qualname__} takes *{name}: a task's arguments must be "
                    "named, so that they can be stored as JSON and checked"
                )
            default = ... if parameter.default is parameter.empty else parameter.default
            fields[name] = (hint, default)
        # Positional arguments of a push bind to the payload's parameters only.
        self.signature = signature.replace(
            parameters=[p for n, p in signature.parameters.items() if n != self.context_parameter]
        )
        config = pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False)
        self.model: type[pydantic.BaseModel] = pydantic.create_model(
            f"{function.__qualname__}Payload", __config__=config, **fields
        )
        self.task_name = function.__qualname__
        self._names = tuple(self.model.model_fields)

    def encode(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> bytes:
        """Validate call arguments and return them as JSON bytes."""
        try:
            bound = self.signature.bind_partial(*args, **kwargs).arguments
        except TypeError as exc:
            raise PayloadInvalid(f"{self.task_name}: {exc}") from exc
        try:
            return self.model.model_validate(bound).model_dump_json().encode()
        except pydantic.ValidationError as exc:
            raise PayloadInvalid(f"{self.task_name}: {describe(exc)}") from exc
        except pydantic_core.PydanticSerializationError as exc:
            raise PayloadInvalid(f"{self.task_name}: cannot encode as JSON: {exc}") from exc

    def encode_json(self, payload: bytes | str) -> bytes:
        """Validate arguments already in JSON (the CLI's ``--args``) and re-encode them."""
        return self.model.model_dump_json(self.decode_model(payload)).encode()

    def decode(self, payload: bytes) -> dict[str, Any]:
        """Stored bytes → the keyword arguments of the handler (context excluded)."""
        model = self.decode_model(payload)
        return {name: getattr(model, name) for name in self._names}

    def decode_model(self, payload: bytes | str) -> pydantic.BaseModel:
        try:
            return self.model.model_validate_json(payload)
        except pydantic.ValidationError as exc:
            if any(error["type"] == "json_invalid" for error in exc.errors()):
                raise PayloadUndecodable(
                    f"{self.task_name}: the payload is not valid JSON: {_excerpt(payload)}"
                ) from exc
            raise PayloadInvalid(f"{self.task_name}: {describe(exc)}") from exc


def describe(error: pydantic.ValidationError) -> str:
    """One line per problem, each naming its field: ``field 'to': Field required``."""
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(p) for p in problem["loc"]) or "payload"
        if problem["type"] == "extra_forbidden":
            parts.append(f"unexpected field {where!r}")
        else:
            parts.append(f"field {where!r}: {problem['msg']}")
    return "; ".join(parts)


def _excerpt(payload: bytes | str, limit: int = 60) -> str:
    text = payload if isinstance(payload, str) else payload.decode("utf-8", "backslashreplace")
    return repr(text if len(text) <= limit else text[:limit] + "…")
