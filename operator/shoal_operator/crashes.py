"""Worker pods that keep exiting, per pool, and the condition they add up to. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Health:
    """The pool's ``WorkersHealthy`` condition."""

    ok: bool
    reason: str
    message: str


@dataclass(slots=True)
class CrashTracker:
    """Pods of one pool whose worker keeps exiting (a wrong app path, a bad password, an
    import error), with why; a pod leaves when it runs again or is deleted."""

    crashing: dict[str, str] = field(default_factory=dict)

    def observe(self, pod: str, crash: str | None) -> Health:
        """Record what a pod's status says (``crash`` None: not crashing) and return the
        pool's health: the first crashing pod by name speaks for all."""
        if crash is None:
            self.crashing.pop(pod, None)
        else:
            self.crashing[pod] = crash
        if not self.crashing:
            return Health(True, "WorkersRunning", "no worker is crashing")
        name, why = min(self.crashing.items())
        return Health(
            False,
            "WorkerCrashing",
            f"pod {name}: {why}. Fix the cause (the WorkerPool's app, image or the "
            "Secret's URL); the pods restart on their own",
        )
