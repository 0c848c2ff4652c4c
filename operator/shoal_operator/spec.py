"""The custom resources as typed values: pydantic models of the CRDs' specs, with their defaults.

The API server validates and defaults with the CRD's schema (``crds/``, the one source of
truth); the models here declare the same fields, bounds and defaults once, and
``tests/unit/operator/test_crd_schema.py`` holds the two to each other. Parsing repeats the
checks, so that a resource that slipped through (an older CRD, a hand-made object in a test)
becomes an :class:`InvalidSpec` naming the field to fix, never a crash.

Python names are the operator's; each field's alias is its name in the CRD.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from shoal.core.settings import describe
from shoal_operator.errors import InvalidSpec

GROUP = "shoal.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PAUSED_ANNOTATION = f"{GROUP}/paused"
GRACE_MARGIN_SECONDS = 15
"""Added to the shutdown timeout: time for the process to start draining, release what it
could not finish and deregister before the kubelet's SIGKILL."""

FROM_METADATA = frozenset({"name", "namespace", "paused"})
"""Fields taken from the object's metadata, not from its spec (so not in the CRD's spec)."""

APP_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z_][A-Za-z0-9_]*$"
"""``module:attribute``, as ``shoal worker`` imports it."""


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """Which custom resource a status write or an Event is about."""

    kind: Literal["Queue", "WorkerPool"]
    namespace: str
    name: str
    uid: str | None = None

    @property
    def plural(self) -> str:
        return f"{self.kind.lower()}s"

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def of(cls, kind: Literal["Queue", "WorkerPool"], body: Mapping[str, Any]) -> ObjectRef:
        meta = body.get("metadata") or {}
        return cls(kind, meta.get("namespace", "default"), meta.get("name", ""), meta.get("uid"))


class CrdModel(BaseModel):
    """A part of a custom resource: frozen, parsed by its CRD names (aliases) or by its
    Python names. Fields the CRD does not know are dropped, as the API server prunes them."""

    model_config = ConfigDict(
        frozen=True, validate_by_alias=True, validate_by_name=True, extra="ignore"
    )


@dataclass(frozen=True, slots=True)
class SecretKey:
    """A key of a Secret in the resource's namespace."""

    name: str = Field(min_length=1, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class Backend(CrdModel):
    url_secret: SecretKey = Field(alias="urlSecretRef")


class QueueSpec(CrdModel):
    """A ``Queue``: a named queue on a backend whose URL is in a Secret."""

    name: str
    namespace: str = "default"
    queue_name_override: str | None = Field(
        default=None, alias="queueName", min_length=1, max_length=200
    )
    backend: Backend
    stats_interval: int = Field(default=5, ge=1, le=300, alias="statsIntervalSeconds")

    @property
    def queue_name(self) -> str:
        """The queue's name in the backend: the object's name unless ``queueName`` says."""
        return self.queue_name_override or self.name

    @property
    def url_secret(self) -> SecretKey:
        return self.backend.url_secret


class QueueRef(CrdModel):
    name: str = Field(min_length=1, max_length=253)


class Autoscaling(CrdModel):
    min_replicas: int = Field(default=0, ge=0, le=1000, alias="minReplicas")
    max_replicas: int = Field(default=10, ge=1, le=1000, alias="maxReplicas")
    target_per_replica: int | None = Field(default=None, ge=1, alias="targetPerReplica")
    """Runnable plus in-flight tasks per replica; a pool's parse sets its concurrency here
    when the resource leaves it out."""
    scale_up_window: int = Field(default=0, ge=0, le=3600, alias="scaleUpStabilizationSeconds")
    scale_down_window: int = Field(default=60, ge=0, le=3600, alias="scaleDownStabilizationSeconds")
    scale_down_step: int | None = Field(default=None, ge=1, alias="scaleDownMaxStep")
    max_surge: int | None = Field(default=None, ge=1, alias="maxSurge")
    idle_cooldown: int = Field(default=300, ge=0, le=86400, alias="idleCooldownSeconds")
    schedule_lead: int | None = Field(default=None, ge=0, le=3600, alias="scheduleLeadSeconds")
    """Seconds before a scheduled task (a schedule's tick) comes due that a pool at zero is
    woken; None: the pod start time last observed (30 s until one is)."""

    @model_validator(mode="after")
    def _bounds_in_order(self) -> Self:
        if self.min_replicas > self.max_replicas:
            raise ValueError(
                f"minReplicas ({self.min_replicas}) exceeds maxReplicas ({self.max_replicas})"
            )
        return self


class PodOverrides(CrdModel):
    env: tuple[dict[str, Any], ...] = ()
    resources: dict[str, Any] = {}
    node_selector: dict[str, str] = Field(default={}, alias="nodeSelector")
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] = {}
    service_account_name: str | None = Field(default=None, alias="serviceAccountName")
    image_pull_secrets: tuple[dict[str, Any], ...] = Field(default=(), alias="imagePullSecrets")
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}


class Tls(CrdModel):
    """Certificates for TLS to the backend, from a Secret mounted read-only in every worker
    at :data:`TLS_MOUNT_PATH`; the URL in the Queue's Secret names the files there."""

    secret_name: str = Field(min_length=1, max_length=253, alias="secretName")


TLS_MOUNT_PATH = "/etc/shoal/tls"
"""Where a WorkerPool's ``tls.secretName`` is mounted: each key of the Secret is a file,
e.g. ``sslrootcert=/etc/shoal/tls/ca.crt`` or ``ssl_ca_certs=/etc/shoal/tls/ca.crt``."""


class WorkerPoolSpec(CrdModel):
    """A ``WorkerPool``: workers of one app for some queues, and how to scale them."""

    name: str
    namespace: str = "default"
    paused: bool = False
    """The ``shoal.dev/paused`` annotation: the replicas are the user's, not the scaler's."""
    queues: tuple[QueueRef, ...] = Field(min_length=1, max_length=50)
    image: str = Field(min_length=1)
    app: str = Field(pattern=APP_PATTERN)
    concurrency: int = Field(default=10, ge=1, le=1000)
    prefetch: int | None = Field(default=None, ge=0, le=100000)
    """Tasks a worker claims ahead of free slots; None leaves it to the worker (automatic)."""
    shutdown_timeout: int = Field(default=30, ge=1, le=86400, alias="shutdownTimeoutSeconds")
    grace_period_override: int | None = Field(
        default=None, ge=2, alias="terminationGracePeriodSeconds"
    )
    replicas: int | None = Field(default=None, ge=0)
    autoscaling: Autoscaling = Autoscaling()
    pod: PodOverrides = Field(default=PodOverrides(), alias="template")
    tls: Tls | None = None

    @model_validator(mode="after")
    def _resolve(self) -> Self:
        grace = self.grace_period_override
        if grace is not None and grace <= self.shutdown_timeout:
            raise ValueError(
                f"spec.terminationGracePeriodSeconds ({grace}) must exceed "
                f"spec.shutdownTimeoutSeconds ({self.shutdown_timeout}), or a scale-down "
                "cuts running tasks in half"
            )
        if self.autoscaling.target_per_replica is None:
            target = {"target_per_replica": self.concurrency}
            return self.model_copy(
                update={"autoscaling": self.autoscaling.model_copy(update=target)}
            )
        return self

    @property
    def queue_refs(self) -> tuple[str, ...]:
        return tuple(ref.name for ref in self.queues)

    @property
    def grace_period(self) -> int:
        """terminationGracePeriodSeconds: always longer than the workers' drain."""
        if self.grace_period_override is not None:
            return self.grace_period_override
        return self.shutdown_timeout + GRACE_MARGIN_SECONDS


M = TypeVar("M", bound=CrdModel)


def parse_queue(body: Mapping[str, Any]) -> QueueSpec:
    return _parse(QueueSpec, body)


def parse_worker_pool(body: Mapping[str, Any]) -> WorkerPoolSpec:
    return _parse(WorkerPoolSpec, body)


def _parse(model: type[M], body: Mapping[str, Any]) -> M:
    meta = body.get("metadata") or {}
    paused = str((meta.get("annotations") or {}).get(PAUSED_ANNOTATION, "")).lower()
    values = {
        **(body.get("spec") or {}),
        "name": meta.get("name"),
        "namespace": meta.get("namespace", "default"),
    }
    if "paused" in model.model_fields:
        values["paused"] = paused in ("true", "1", "yes")
    try:
        return model.model_validate(values)
    except ValidationError as error:
        named = describe(error, lambda path: f"{_section(path)}{path}")
        kind = model.__name__.removesuffix("Spec")
        raise InvalidSpec(f"{kind} {meta.get('name')}: {named}") from None


def _section(path: str) -> str:
    return "metadata." if path.split(".")[0] in FROM_METADATA else "spec."
