"""Worker settings: one frozen dataclass, each field with its reason and its environment twin.

Values come from arguments, then ``SHOAL_<FIELD>`` environment variables, then the defaults
below. The CLI builds its flags from these fields, so a flag, its variable and its help text
can never drift apart.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal.core.errors import ConfigurationError


def _setting(default: Any, help: str, shown: str | None = None) -> Any:
    """A field with its help text, and how ``--help`` shows its default if not as itself."""
    return field(default=default, metadata={"help": help, "shown": shown})


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """How one worker claims and runs tasks."""

    queues: tuple[str, ...] = _setting(
        (), "queues to serve, comma separated; default: every queue the app's tasks use"
    )
    concurrency: int = _setting(
        10, "tasks run at once; the worker claims for its free slots (plus --prefetch)"
    )
    prefetch: int | None = _setting(
        None,
        "tasks claimed ahead of free slots, for bigger batches and no wait between them; "
        "automatic: as many as the slots finish in 20 ms judging by recent run "
        "times (none for slow tasks), at most 10 per slot; 0 claims only for free slots",
        shown="automatic",
    )
    shutdown_timeout: float = _setting(
        30.0,
        "seconds running tasks get to finish after SIGTERM before they are released back; "
        "on Kubernetes keep it below terminationGracePeriodSeconds (the operator adds a margin)",
    )
    lease_seconds: float = _setting(
        30.0,
        "seconds a claim stays valid without a heartbeat; a crashed worker's tasks are "
        "re-queued this long after its last heartbeat (heartbeats run every lease/6)",
    )
    poll_interval: float = _setting(
        1.0, "seconds between polls when no wake-up arrives (wake-ups make most polls moot)"
    )
    reap_interval: float = _setting(
        5.0, "seconds between passes that re-queue tasks whose lease expired"
    )
    max_tasks: int | None = _setting(
        None, "drain and exit after this many tasks, for a supervisor to restart (leaky code)"
    )
    max_rss_mb: int | None = _setting(
        None, "drain and exit once resident memory exceeds this many MiB"
    )
    health_file: str | None = _setting(
        None, "touched on every heartbeat (lease/6 s); `shoal check --health-file` reads its age"
    )
    health_port: int | None = _setting(
        None,
        "serve /livez and /readyz on this port, from a thread (a busy loop never times a "
        "probe out): the operator's httpGet probes; live while heartbeats keep coming",
    )
    startup_timeout: float = _setting(
        60.0,
        "seconds a starting worker keeps trying an unreachable or unmigrated backend, with "
        "back-off, before it exits with code 3; long enough for a database started beside it",
    )
    require_persistence: bool = _setting(
        False,
        "refuse to start (exit 3) on a backend that loses tasks when its server restarts "
        "(Redis with neither AOF nor RDB, memory://) instead of warning",
        shown="false",
    )

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigurationError(f"concurrency must be at least 1, not {self.concurrency}")
        if self.prefetch is not None and self.prefetch < 0:
            raise ConfigurationError(f"prefetch must be 0 or more, not {self.prefetch}")
        for name in ("shutdown_timeout", "lease_seconds", "poll_interval", "reap_interval"):
            if getattr(self, name) <= 0:
                raise ConfigurationError(f"{name} must be positive, not {getattr(self, name)}")
        if self.startup_timeout < 0:
            raise ConfigurationError(
                f"startup_timeout must be 0 or more, not {self.startup_timeout}"
            )
        if self.health_port is not None and not 0 <= self.health_port < 65536:
            raise ConfigurationError(f"health_port must be a TCP port, not {self.health_port}")

    @property
    def heartbeat_interval(self) -> float:
        """Six heartbeats per lease: a lease survives five lost or late heartbeats."""
        return self.lease_seconds / 6

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> WorkerSettings:
        """Overrides (not None) first, then ``SHOAL_*`` variables, then defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for spec in dataclasses.fields(cls):
            if overrides.get(spec.name) is not None:
                values[spec.name] = overrides[spec.name]
            elif (raw := environ.get(env_name(spec.name))) is not None:
                values[spec.name] = parse(spec.name, str(spec.type), raw)
        return cls(**values)


_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLEANS |= {"0": False, "false": False, "no": False, "off": False}


def env_name(field_name: str) -> str:
    return f"SHOAL_{field_name.upper()}"


def parse(name: str, kind: str, raw: str) -> Any:
    """Parse a setting's text (a variable or a flag) by its annotated type."""
    raw = raw.strip()
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    base = kind.replace(" | None", "")
    if base == "str":
        return raw or None
    if base == "bool":
        if raw.lower() not in _BOOLEANS:
            raise ConfigurationError(
                f"{env_name(name)} / --{name.replace('_', '-')} must be true or false, not {raw!r}"
            )
        return _BOOLEANS[raw.lower()]
    try:
        return int(raw) if base == "int" else float(raw)
    except ValueError:
        raise ConfigurationError(
            f"{env_name(name)} / --{name.replace('_', '-')} must be a number, not {raw!r}"
        ) from None
