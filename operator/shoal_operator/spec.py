"""The custom resources as typed values: parsed once, checked, with the CRD's defaults.

The API server validates and defaults with the CRD's schema; parsing here repeats the checks
that matter so that a resource that slipped through (an older CRD, a hand-made object in a
test) becomes an :class:`InvalidSpec` with a message that says what to fix, never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

GROUP = "shoal.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PAUSED_ANNOTATION = f"{GROUP}/paused"
GRACE_MARGIN_SECONDS = 15
"""Added to the shutdown timeout: time for the process to start draining, release what it
could not finish and deregister before the kubelet's SIGKILL."""

_APP_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class InvalidSpec(ValueError):
    """A custom resource cannot be acted on; the message says what to change."""


@dataclass(frozen=True, slots=True)
class SecretKey:
    name: str
    key: str


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A ``Queue``: a named queue on a backend whose URL is in a Secret."""

    name: str
    namespace: str
    queue_name: str
    url_secret: SecretKey
    stats_interval: float = 5.0


@dataclass(frozen=True, slots=True)
class Autoscaling:
    min_replicas: int = 0
    max_replicas: int = 10
    target_per_replica: int = 10
    scale_up_window: float = 0.0
    scale_down_window: float = 60.0
    scale_down_step: int | None = None
    max_surge: int | None = None
    idle_cooldown: float = 300.0


@dataclass(frozen=True, slots=True)
class PodOverrides:
    env: tuple[Mapping[str, Any], ...] = ()
    resources: Mapping[str, Any] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)
    service_account_name: str | None = None
    image_pull_secrets: tuple[Mapping[str, Any], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class WorkerPoolSpec:
    """A ``WorkerPool``: workers of one app for some queues, and how to scale them."""

    name: str
    namespace: str
    queue_refs: tuple[str, ...]
    image: str
    app: str
    concurrency: int = 10
    prefetch: int | None = None
    """Tasks a worker claims ahead of free slots; None leaves it to the worker (automatic)."""
    shutdown_timeout: int = 30
    grace_period_override: int | None = None
    autoscaling: Autoscaling = field(default_factory=Autoscaling)
    pod: PodOverrides = field(default_factory=PodOverrides)
    replicas: int | None = None
    paused: bool = False

    @property
    def grace_period(self) -> int:
        """terminationGracePeriodSeconds: always longer than the workers' drain."""
        if self.grace_period_override is not None:
            return self.grace_period_override
        return self.shutdown_timeout + GRACE_MARGIN_SECONDS


def parse_queue(body: Mapping[str, Any]) -> QueueSpec:
    meta, spec = body.get("metadata", {}), body.get("spec") or {}
    secret = (spec.get("backend") or {}).get("urlSecretRef") or {}
    if not secret.get("name") or not secret.get("key"):
        raise InvalidSpec(
            "spec.backend.urlSecretRef needs a name and a key: the Secret and "
            "the key in it that holds the backend URL"
        )
    interval = float(spec.get("statsIntervalSeconds", 5))
    if interval < 1:
        raise InvalidSpec("spec.statsIntervalSeconds must be at least 1")
    return QueueSpec(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        queue_name=spec.get("queueName") or meta["name"],
        url_secret=SecretKey(secret["name"], secret["key"]),
        stats_interval=interval,
    )


def parse_worker_pool(body: Mapping[str, Any]) -> WorkerPoolSpec:
    meta, spec = body.get("metadata", {}), body.get("spec") or {}
    refs = tuple(ref.get("name", "") for ref in spec.get("queues") or [])
    if not refs or not all(refs):
        raise InvalidSpec("spec.queues must name at least one Queue: [{name: <queue>}]")
    if not spec.get("image"):
        raise InvalidSpec("spec.image is required: the worker image holding your tasks")
    app = spec.get("app", "")
    if not _APP_PATH.match(app):
        raise InvalidSpec(
            f"spec.app must be module:attribute (like myproject.tasks:app), not {app!r}"
        )
    concurrency = _positive(spec, "concurrency", 10)
    prefetch = _optional_int(spec, "prefetch")
    if prefetch is not None and prefetch < 0:
        raise InvalidSpec(f"spec.prefetch must be 0 or more, not {prefetch}")
    shutdown = _positive(spec, "shutdownTimeoutSeconds", 30)
    grace = spec.get("terminationGracePeriodSeconds")
    if grace is not None and int(grace) <= shutdown:
        raise InvalidSpec(
            f"spec.terminationGracePeriodSeconds ({grace}) must exceed "
            f"spec.shutdownTimeoutSeconds ({shutdown}), or a scale-down cuts "
            "running tasks in half"
        )
    scaling = spec.get("autoscaling") or {}
    autoscaling = Autoscaling(
        min_replicas=int(scaling.get("minReplicas", 0)),
        max_replicas=int(scaling.get("maxReplicas", 10)),
        target_per_replica=int(scaling.get("targetPerReplica") or concurrency),
        scale_up_window=float(scaling.get("scaleUpStabilizationSeconds", 0)),
        scale_down_window=float(scaling.get("scaleDownStabilizationSeconds", 60)),
        scale_down_step=_optional_int(scaling, "scaleDownMaxStep"),
        max_surge=_optional_int(scaling, "maxSurge"),
        idle_cooldown=float(scaling.get("idleCooldownSeconds", 300)),
    )
    if autoscaling.min_replicas < 0 or autoscaling.max_replicas < 1:
        raise InvalidSpec("autoscaling needs minReplicas ≥ 0 and maxReplicas ≥ 1")
    if autoscaling.min_replicas > autoscaling.max_replicas:
        raise InvalidSpec(
            f"autoscaling.minReplicas ({autoscaling.min_replicas}) exceeds "
            f"maxReplicas ({autoscaling.max_replicas})"
        )
    template = spec.get("template") or {}
    pod = PodOverrides(
        env=tuple(template.get("env") or ()),
        resources=template.get("resources") or {},
        node_selector=template.get("nodeSelector") or {},
        tolerations=tuple(template.get("tolerations") or ()),
        affinity=template.get("affinity") or {},
        service_account_name=template.get("serviceAccountName"),
        image_pull_secrets=tuple(template.get("imagePullSecrets") or ()),
        labels=template.get("labels") or {},
        annotations=template.get("annotations") or {},
    )
    annotations = meta.get("annotations") or {}
    return WorkerPoolSpec(
        name=meta["name"],
        namespace=meta.get("namespace", "default"),
        queue_refs=refs,
        image=spec["image"],
        app=app,
        concurrency=concurrency,
        prefetch=prefetch,
        shutdown_timeout=shutdown,
        grace_period_override=None if grace is None else int(grace),
        autoscaling=autoscaling,
        pod=pod,
        replicas=_optional_int(spec, "replicas"),
        paused=str(annotations.get(PAUSED_ANNOTATION, "")).lower() in ("true", "1", "yes"),
    )


def _positive(spec: Mapping[str, Any], name: str, default: int) -> int:
    value = int(spec.get(name, default))
    if value < 1:
        raise InvalidSpec(f"spec.{name} must be at least 1, not {value}")
    return value


def _optional_int(spec: Mapping[str, Any], name: str) -> int | None:
    value = spec.get(name)
    return None if value is None else int(value)
