"""What the operator knows of each pool and queue between measurements, and the statuses it
writes for them (typed, by the CRDs' status field names)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from shoal.core.models import QueueStats
from shoal_operator.conditions import Condition, now_iso
from shoal_operator.crashes import CrashTracker
from shoal_operator.rendering import POOL_LABEL
from shoal_operator.scaling import History
from shoal_operator.spec import CrdModel, ObjectRef, QueueSpec, SecretKey, WorkerPoolSpec


class Status(CrdModel):
    """A status to write: only the fields set are sent (a merge patch), ``None`` removes."""

    conditions: list[Condition] | None = None

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(by_alias=True, exclude_unset=True)


class WorkerPoolStatus(Status):
    queues: str | None = None
    selector: str | None = None
    replicas: int | None = None
    ready_replicas: int | None = Field(default=None, alias="readyReplicas")
    desired_replicas: int | None = Field(default=None, alias="desiredReplicas")
    depth: int | None = None
    in_flight: int | None = Field(default=None, alias="inFlight")
    last_scale_time: str | None = Field(default=None, alias="lastScaleTime")
    last_scale_reason: str | None = Field(default=None, alias="lastScaleReason")
    observed_generation: int | None = Field(default=None, alias="observedGeneration")


class QueueStatus(Status):
    ready: int | None = None
    scheduled: int | None = None
    running: int | None = None
    dead: int | None = None
    oldest_ready_since: str | None = Field(default=None, alias="oldestReadySince")
    next_due: str | None = Field(default=None, alias="nextDue")
    """When the first scheduled task (a schedule's next tick) comes due."""
    observed_time: str | None = Field(default=None, alias="observedTime")


@dataclass
class Pool:
    spec: WorkerPoolSpec
    uid: str
    generation: int
    queue_names: list[str]
    url: str
    replicas: int
    secret: SecretKey
    ready: int = 0
    history: History = field(default_factory=History)
    conditions: list[Condition] = field(default_factory=list)
    last_scale_time: str | None = None
    last_scale_reason: str | None = None
    desired: int | None = None
    depth: int = 0
    in_flight: int = 0
    crashes: CrashTracker = field(default_factory=CrashTracker)

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.namespace, self.spec.name)

    @property
    def reference(self) -> ObjectRef:
        return ObjectRef("WorkerPool", self.spec.namespace, self.spec.name, self.uid)

    def learn_from(self, previous: Pool) -> None:
        """Keep what the operator learnt of the pool before its spec changed."""
        self.history, self.ready, self.crashes = previous.history, previous.ready, previous.crashes
        self.last_scale_time = previous.last_scale_time
        self.last_scale_reason = previous.last_scale_reason

    def status(self) -> WorkerPoolStatus:
        return WorkerPoolStatus(
            queues=",".join(self.queue_names),
            selector=f"{POOL_LABEL}={self.spec.name}",
            replicas=self.replicas,
            readyReplicas=self.ready,
            desiredReplicas=self.desired if self.desired is not None else self.replicas,
            depth=self.depth,
            inFlight=self.in_flight,
            lastScaleTime=self.last_scale_time,
            lastScaleReason=self.last_scale_reason,
            observedGeneration=self.generation,
            conditions=self.conditions,
        )


@dataclass
class QueueEntry:
    spec: QueueSpec
    uid: str
    url: str
    conditions: list[Condition] = field(default_factory=list)
    observed: tuple[tuple[int, ...], str] | None = None
    """The last figures and when they were first seen: unchanged figures write nothing."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.namespace, self.spec.name)

    @property
    def reference(self) -> ObjectRef:
        return ObjectRef("Queue", self.spec.namespace, self.spec.name, self.uid)

    def observed_time(self, figures: QueueStats) -> str:
        key = (figures.ready, figures.scheduled, figures.running, figures.dead)
        if self.observed is None or self.observed[0] != key:
            self.observed = (key, now_iso())
        return self.observed[1]
