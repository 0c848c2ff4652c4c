"""Settings parsed by pydantic from their declared types, and the worker's settings.

:class:`Settings` is the base of every settings object in shoal (the worker's here, a
backend's URL options, the operator's): frozen, unknown names refused, each field's
docstring its documentation, and a bad value a :class:`ConfigurationError` of one line
naming the setting the way its user wrote it (a flag, a variable, a URL option).

:class:`EnvSettings` adds an environment twin to every field: values come from arguments,
then ``<prefix><FIELD>`` variables, then the defaults. The CLIs build their flags from the
fields (``shoal.cli.options``), so a flag, its variable and its help text are one thing,
and adding a setting is adding a field.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from shoal.core.errors import ConfigurationError
from shoal.core.limits import Rate


@dataclass(frozen=True, slots=True)
class Shown:
    """How ``--help`` shows a field's default when not as itself (``None`` as "automatic")."""

    text: str


@dataclass(frozen=True, slots=True)
class AlsoFrom:
    """Variables read after a field's own twin: names that others (Kubernetes) set."""

    variables: tuple[str, ...]


def _comma_separated(value: object) -> object:
    """``"a, b"`` or ``["a,b", "c"]`` (a repeated flag) as ``("a", "b", "c")``."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, list | tuple) and all(isinstance(item, str) for item in value):
        return tuple(part.strip() for item in value for part in item.split(",") if part.strip())
    return value


Names = Annotated[tuple[str, ...], BeforeValidator(_comma_separated)]
"""Names given comma separated, in one value or several."""


_UNQUOTED = frozenset({"missing", "too_short", "too_long"})
"""Errors whose input is not worth repeating: nothing, or a whole list."""


def describe(error: ValidationError, name_of: Callable[[str], str] = str) -> str:
    """``error`` as one line naming each bad setting the way its user wrote it (``name_of``
    maps a dotted field path to that name); quoting the value given, where there was one."""
    problems = []
    for detail in error.errors(include_url=False):
        path = ".".join(str(part) for part in detail["loc"])
        message = detail["msg"].removeprefix("Value error, ")
        message = message[:1].lower() + message[1:]
        given = detail.get("input")
        if detail["type"] in _UNQUOTED or not isinstance(given, str | int | float):
            given = None
        if detail["type"] == "extra_forbidden":
            problems.append(f"unknown setting {name_of(path)}")
        elif not path:  # a rule over several fields names them itself
            problems.append(message)
        else:
            problems.append(
                f"{name_of(path)}: {message}" + ("" if given is None else f", not {given!r}")
            )
    return "; ".join(problems)


class Settings(BaseModel):
    """Frozen settings checked against their declared types; see the module docstring."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", use_attribute_docstrings=True, validate_default=True
    )

    @classmethod
    def setting_names(cls) -> Mapping[str, str]:
        """How errors name each field: as written by the user (overridden by subclasses)."""
        return {name: name for name in cls.model_fields}

    @model_validator(mode="wrap")
    @classmethod
    def _one_line_errors(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # A ConfigurationError is not a ValueError, so pydantic lets it through as it is.
        try:
            return handler(data)
        except ValidationError as error:
            names = cls.setting_names()
            raise ConfigurationError(describe(error, lambda path: names.get(path, path))) from None


class EnvSettings(Settings):
    """Settings whose every field has an environment twin ``<env_prefix><FIELD>``."""

    env_prefix: ClassVar[str]

    @classmethod
    def env_name(cls, field_name: str) -> str:
        return f"{cls.env_prefix}{field_name.upper()}"

    @classmethod
    def flag_name(cls, field_name: str) -> str:
        return f"--{field_name.replace('_', '-')}"

    @classmethod
    def setting_names(cls) -> Mapping[str, str]:
        return {name: f"{cls.env_name(name)} / {cls.flag_name(name)}" for name in cls.model_fields}

    @classmethod
    def variables(cls, field_name: str) -> Iterable[str]:
        """The variables a field is read from, first found wins."""
        yield cls.env_name(field_name)
        for marker in cls.model_fields[field_name].metadata:
            if isinstance(marker, AlsoFrom):
                yield from marker.variables

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Self:
        """Overrides (not None) first, then the environment, then defaults. Text (a flag, a
        variable) is parsed by the field's type; an empty value counts as unset."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            given = [overrides.get(name), *(environ.get(v) for v in cls.variables(name))]
            found = next((value for value in given if value is not None and value != ""), None)
            if found is not None:
                values[name] = found
        unknown = sorted(set(overrides) - set(cls.model_fields))
        if unknown:
            raise ConfigurationError(f"unknown setting(s) {', '.join(unknown)}")
        return cls.model_validate(values)


class WorkerSettings(EnvSettings):
    """How one worker claims and runs tasks. Each field is a ``shoal worker`` flag too."""

    env_prefix: ClassVar[str] = "SHOAL_"

    queues: Annotated[Names, Shown("every queue of the app's tasks")] = ()
    """queues to serve, comma separated"""
    concurrency: int = Field(default=10, ge=1)
    """tasks run at once; the worker claims for its free slots (plus --prefetch)"""
    prefetch: Annotated[int | None, Shown("automatic")] = Field(default=None, ge=0)
    """tasks claimed ahead of free slots, for bigger batches and no wait between them;
    automatic: as many as the slots finish in 20 ms judging by recent run times (none for
    slow tasks), at most 10 per slot; 0 claims only for free slots"""
    shutdown_timeout: float = Field(default=30.0, gt=0)
    """seconds running tasks get to finish after SIGTERM before they are released back; on
    Kubernetes keep it below terminationGracePeriodSeconds (the operator adds a margin)"""
    lease_seconds: float = Field(default=30.0, gt=0)
    """seconds a claim stays valid without a heartbeat; a crashed worker's tasks are
    re-queued this long after its last heartbeat (heartbeats run every lease/6)"""
    poll_interval: float = Field(default=1.0, gt=0)
    """seconds between polls when no wake-up arrives (wake-ups make most polls moot)"""
    reap_interval: float = Field(default=5.0, gt=0)
    """seconds between passes that re-queue tasks whose lease expired"""
    max_tasks: int | None = Field(default=None, ge=1)
    """drain and exit after this many tasks, for a supervisor to restart (leaky code)"""
    max_rss_mb: int | None = Field(default=None, ge=1)
    """drain and exit once resident memory exceeds this many MiB"""
    health_file: str | None = None
    """touched on every heartbeat (lease/6 s); `shoal check --health-file` reads its age"""
    host: Annotated[str | None, AlsoFrom(("POD_NAME",)), Shown("$POD_NAME, else the hostname")] = (
        None
    )
    """the host this worker reports: on Kubernetes its pod's name (the operator's pods set
    POD_NAME), which the operator maps to a pod for the pod deletion cost"""
    health_port: int | None = Field(default=None, ge=1, le=65535)
    """serve /livez and /readyz on this port, from a thread (a busy loop never times a probe
    out): the operator's httpGet probes; live while heartbeats keep coming"""
    startup_timeout: float = Field(default=60.0, ge=0)
    """seconds a starting worker keeps trying an unreachable or unmigrated backend, with
    back-off, before it exits with code 3; long enough for a database started beside it"""
    require_persistence: bool = False
    """refuse to start (exit 3) on a backend that loses tasks when its server restarts (Redis
    with neither AOF nor RDB, memory://) instead of warning"""
    rate_limit: str | None = None
    """this worker starts at most COUNT tasks per s, m or h (e.g. 50/s), and claims no more
    than it may start; limits for all workers together are declared on tasks and queues"""

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str | None) -> str | None:
        return None if value is None else str(Rate.parse(value))

    @property
    def heartbeat_interval(self) -> float:
        """Six heartbeats per lease: a lease survives five lost or late heartbeats."""
        return self.lease_seconds / 6
