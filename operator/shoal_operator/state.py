"""What the operator knows of each pool and queue between measurements, and the status
writer that turns it into API writes only when something changed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shoal.core.models import QueueStats
from shoal_operator.conditions import now_iso
from shoal_operator.kube import Kube
from shoal_operator.rendering import POOL_LABEL
from shoal_operator.scaling import History
from shoal_operator.spec import QueueSpec, SecretKey, WorkerPoolSpec


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
    conditions: list[dict[str, Any]] = field(default_factory=list)
    last_scale_time: str | None = None
    last_scale_reason: str | None = None
    desired: int | None = None
    depth: int = 0
    in_flight: int = 0
    crashes: dict[str, str] = field(default_factory=dict)
    """Pods whose worker keeps exiting, with why."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.namespace, self.spec.name)

    @property
    def reference(self) -> dict[str, Any]:
        meta = {"name": self.spec.name, "namespace": self.spec.namespace, "uid": self.uid}
        return {"metadata": meta}

    def status(self) -> dict[str, Any]:
        return {
            "queues": ",".join(self.queue_names),
            "selector": f"{POOL_LABEL}={self.spec.name}",
            "replicas": self.replicas,
            "readyReplicas": self.ready,
            "desiredReplicas": self.desired if self.desired is not None else self.replicas,
            "depth": self.depth,
            "inFlight": self.in_flight,
            "lastScaleTime": self.last_scale_time,
            "lastScaleReason": self.last_scale_reason,
            "observedGeneration": self.generation,
            "conditions": self.conditions,
        }


@dataclass
class QueueEntry:
    spec: QueueSpec
    uid: str
    url: str
    conditions: list[dict[str, Any]] = field(default_factory=list)
    observed: tuple[tuple[int, ...], str] | None = None
    """The last figures and when they were first seen: unchanged figures write nothing."""

    def observed_time(self, figures: QueueStats) -> str:
        key = (figures.ready, figures.scheduled, figures.running, figures.dead)
        if self.observed is None or self.observed[0] != key:
            self.observed = (key, now_iso())
        return self.observed[1]


class StatusWriter:
    """Writes a custom resource's status only when it differs from what was last written."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._written: dict[tuple[str, str, str], dict[str, Any]] = {}

    async def write(self, plural: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        key = (plural, namespace, name)
        if self._written.get(key) == status:
            return
        await self.kube.patch_status(plural, namespace, name, status)
        self._written[key] = status

    def forget(self, plural: str, namespace: str, name: str) -> None:
        self._written.pop((plural, namespace, name), None)
