"""The kopf handlers: thin I/O over the pure parts (spec, rendering, scaling).

Every failure a user can fix ends as a condition on the resource and an Event whose message
says what to do; the operator keeps running and retries (``kopf.TemporaryError``) until the
input is fixed.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from shoal.backends import open_backend
from shoal.core.errors import ShoalError
from shoal_operator import metrics
from shoal_operator.autoscaler import Autoscaler
from shoal_operator.conditions import conditions_of, set_condition
from shoal_operator.errors import InvalidSpec, MissingSecret, OperatorError, QueueMissing
from shoal_operator.kube import Kube
from shoal_operator.leadership import Leadership
from shoal_operator.pods import worker_crash
from shoal_operator.rendering import MANAGED_BY, POOL_LABEL, deployment_name, render_deployment
from shoal_operator.settings import OperatorSettings
from shoal_operator.spec import (
    GROUP,
    VERSION,
    ObjectRef,
    QueueSpec,
    SecretKey,
    WorkerPoolSpec,
    parse_queue,
    parse_worker_pool,
)
from shoal_operator.state import Pool, QueueEntry, Status, WorkerPoolStatus

logger = logging.getLogger("shoal_operator")

RETRY_DELAY = 10.0
KOPF_PREFIX = f"kopf.{GROUP}"


@kopf.on.startup()
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # kopf keeps its bookkeeping in annotations: status fields not in the CRD's schema
    # would be pruned by the API server.
    # A prefix of its own: kopf leaves annotations under its prefix out of the changes it
    # reacts to, and ``shoal.dev/paused`` must be seen.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=KOPF_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=KOPF_PREFIX, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING  # our own Events say what happened
    settings.watching.server_timeout = 300
    leadership: Leadership | None = memo.get("leadership")
    memo.kube = await Kube.connect(leadership)
    memo.autoscaler = Autoscaler(memo.kube)
    # Set by ``shoal-operator``; read here from the environment under ``kopf run``.
    operator_settings: OperatorSettings = memo.get("settings") or OperatorSettings.from_env()
    metrics.serve(operator_settings.metrics_port)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    await memo.autoscaler.stop()
    await memo.kube.close()


# -- Queue -------------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, "queues", backoff=RETRY_DELAY)
@kopf.on.create(GROUP, VERSION, "queues", backoff=RETRY_DELAY)
@kopf.on.update(GROUP, VERSION, "queues", backoff=RETRY_DELAY)
async def queue_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await register_queue(body, memo)


async def register_queue(body: kopf.Body, memo: kopf.Memo) -> None:
    """Resolve the Queue's Secret and hand the queue to the scaler's backend watch."""
    autoscaler: Autoscaler = memo.autoscaler
    try:
        spec = parse_queue(body)
        url = await _backend_url(memo.kube, spec.namespace, spec.url_secret)
    except OperatorError as error:
        await _queue_failed(memo, body, error)
        raise _retry_or_not(error) from None
    previous = autoscaler.registry.queues.get((spec.namespace, spec.name))
    entry = QueueEntry(
        spec, body["metadata"]["uid"], url, conditions=previous.conditions if previous else []
    )
    autoscaler.register_queue(entry)
    for pool in autoscaler.registry.pools_serving(spec.namespace, spec.name):
        await reconcile_pool(memo, pool.spec, pool.uid, pool.generation)


@kopf.timer(GROUP, VERSION, "queues", interval=30, initial_delay=30)
async def queue_recheck(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """A queue whose backend is unreachable re-reads its Secret: a fixed URL or password is
    picked up without touching the Queue. Healthy queues cost nothing here."""
    entry = memo.autoscaler.registry.queues.get(ObjectRef.of("Queue", body).key)
    if entry is None or all(c.ok for c in entry.conditions):
        return
    try:
        url = await _backend_url(memo.kube, entry.spec.namespace, entry.spec.url_secret)
    except OperatorError:
        return
    if url != entry.url:
        await register_queue(body, memo)


@kopf.on.delete(GROUP, VERSION, "queues", optional=True)
async def queue_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    memo.autoscaler.unregister_queue(ObjectRef.of("Queue", body).key)


async def _queue_failed(memo: kopf.Memo, body: kopf.Body, error: OperatorError) -> None:
    metrics.RECONCILE_ERRORS.labels("Queue", error.reason).inc()
    conditions = set_condition(
        conditions_of(body),
        "Reachable",
        False,
        error.reason,
        error.message,
        None,
    )
    target = ObjectRef.of("Queue", body)
    await memo.autoscaler.status.write(target, Status(conditions=conditions))
    await memo.kube.event(target, error.reason, error.message, "Warning")


def _retry_or_not(error: OperatorError) -> kopf.PermanentError | kopf.TemporaryError:
    """Wait for the resource to change, or try again: the missing object may yet appear."""
    if error.permanent:
        return kopf.PermanentError(error.message)
    return kopf.TemporaryError(error.message, delay=RETRY_DELAY)


# -- WorkerPool --------------------------------------------------------------------------------


@kopf.on.resume(GROUP, VERSION, "workerpools", backoff=RETRY_DELAY)
@kopf.on.create(GROUP, VERSION, "workerpools", backoff=RETRY_DELAY)
@kopf.on.update(GROUP, VERSION, "workerpools", backoff=RETRY_DELAY)
async def pool_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    generation = int(body["metadata"].get("generation", 0))
    try:
        spec = parse_worker_pool(body)
    except InvalidSpec as error:
        await _pool_failed(memo, ObjectRef.of("WorkerPool", body), body, error, generation)
        raise _retry_or_not(error) from None
    with metrics.RECONCILE_DURATION.time():
        await reconcile_pool(memo, spec, body["metadata"]["uid"], generation, body)


async def reconcile_pool(
    memo: kopf.Memo,
    spec: WorkerPoolSpec,
    uid: str,
    generation: int,
    body: kopf.Body | None = None,
) -> None:
    """Resolve the pool's queues and Secret, apply its Deployment, hand it to the scaler."""
    kube: Kube = memo.kube
    autoscaler: Autoscaler = memo.autoscaler
    target = ObjectRef("WorkerPool", spec.namespace, spec.name, uid)
    try:
        queues = await _resolve_queues(kube, spec)
        secret = queues[0].url_secret
        if any(q.url_secret != secret for q in queues):
            raise InvalidSpec(
                "all queues of a pool must use the same backend Secret and key: "
                "a worker process talks to one backend"
            )
        url = await _backend_url(kube, spec.namespace, secret)
    except OperatorError as error:
        await _pool_failed(memo, target, body, error, generation)
        raise _retry_or_not(error) from None

    replicas = await kube.deployment_replicas(spec.namespace, deployment_name(spec))
    if replicas is None:
        replicas = spec.replicas if spec.replicas is not None else spec.autoscaling.min_replicas
    pool = Pool(
        spec=spec,
        uid=uid,
        generation=generation,
        queue_names=[q.queue_name for q in queues],
        url=url,
        replicas=replicas,
        secret=secret,
    )
    previous = autoscaler.registry.pools.get(pool.key)
    if previous is not None:
        pool.conditions = previous.conditions
    outcome = await kube.apply_deployment(render(pool))
    pool.conditions = set_condition(
        pool.conditions,
        "Ready",
        True,
        "Reconciled",
        f"Deployment {deployment_name(spec)} {outcome}",
        generation,
    )
    autoscaler.register_pool(pool)
    await autoscaler.status.write(target, pool.status())
    if outcome != "unchanged":
        await kube.event(
            target,
            f"Deployment{outcome.capitalize()}",
            f"Deployment {deployment_name(spec)} {outcome}: {spec.app} on "
            f"{', '.join(pool.queue_names)}, grace {spec.grace_period}s",
        )


def render(pool: Pool) -> dict[str, Any]:
    return render_deployment(
        pool.spec,
        owner_uid=pool.uid,
        queue_names=pool.queue_names,
        url_secret=pool.secret,
        replicas=pool.replicas,
    )


@kopf.on.field(GROUP, VERSION, "workerpools", field="spec.replicas")
async def replicas_set(new: Any, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """``kubectl scale``: applied at once; the autoscaler decides again at its next
    measurement unless the pool is paused."""
    pool = memo.autoscaler.registry.pools.get(ObjectRef.of("WorkerPool", body).key)
    if pool is None or new is None or int(new) == pool.replicas:
        return
    await memo.autoscaler.scale_by_hand(pool, int(new))


@kopf.on.delete(GROUP, VERSION, "workerpools", optional=True)
async def pool_deleted(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    # The Deployment goes with its owner: garbage collection follows the ownerReference.
    memo.autoscaler.unregister_pool(ObjectRef.of("WorkerPool", body).key)


@kopf.on.event("apps", "v1", "deployments", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
async def deployment_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Follow readiness, and put back what a hand edit changed in a pool's Deployment."""
    obj = event["object"]
    meta = obj.get("metadata", {})
    pool = memo.autoscaler.registry.pools.get(
        (meta.get("namespace"), meta.get("labels", {}).get(POOL_LABEL))
    )
    if pool is None:
        return
    if event["type"] == "DELETED":
        await memo.kube.apply_deployment(render(pool))
        return
    status = obj.get("status") or {}
    await memo.autoscaler.observe_deployment(
        pool,
        (obj.get("spec") or {}).get("replicas"),
        int(status.get("readyReplicas") or 0),
    )
    if await memo.kube.apply_deployment(render(pool), current=obj) == "updated":
        await memo.kube.event(
            pool.reference,
            "DeploymentRestored",
            "a hand edit of the Deployment was put back; change the WorkerPool instead",
        )


@kopf.on.event("", "v1", "pods", labels={"app.kubernetes.io/managed-by": MANAGED_BY})
async def pod_event(event: kopf.RawEvent, memo: kopf.Memo, **_: Any) -> None:
    """Report workers that keep exiting, with the reason they printed."""
    obj = event["object"]
    meta = obj.get("metadata", {})
    pool_name = (meta.get("labels") or {}).get(POOL_LABEL)
    if pool_name is None:
        return
    pool = memo.autoscaler.registry.pools.get((meta.get("namespace"), pool_name))
    if pool is None:
        return
    crash = None if event["type"] == "DELETED" else worker_crash(obj)
    health = pool.crashes.observe(meta.get("name"), crash)
    await memo.autoscaler.status.pool_condition(
        pool,
        "WorkersHealthy",
        health.ok,
        health.reason,
        health.message,
        event_type="Normal" if health.ok else "Warning",
    )


async def _resolve_queues(kube: Kube, spec: WorkerPoolSpec) -> list[QueueSpec]:
    queues = []
    for name in spec.queue_refs:
        queue = await kube.get_queue(spec.namespace, name)
        if queue is None:
            raise QueueMissing(
                f"Queue {spec.namespace}/{name} not found: create it, or fix "
                "spec.queues of the WorkerPool"
            )
        queues.append(queue)
    return queues


async def _backend_url(kube: Kube, namespace: str, secret: SecretKey) -> str:
    url = await kube.secret_value(namespace, secret)
    try:
        open_backend(url)  # checks the scheme; connects nothing
    except ShoalError as error:
        raise MissingSecret(
            f"Secret {namespace}/{secret.name} key {secret.key!r}: {error}"
        ) from None
    return url


async def _pool_failed(
    memo: kopf.Memo,
    target: ObjectRef,
    body: kopf.Body | None,
    error: OperatorError,
    generation: int,
) -> None:
    metrics.RECONCILE_ERRORS.labels("WorkerPool", error.reason).inc()
    known = memo.autoscaler.registry.pools.get(target.key)
    current = known.conditions if known is not None else conditions_of(body or {})
    conditions = set_condition(current, "Ready", False, error.reason, error.message, generation)
    if known is not None:
        known.conditions = conditions
    status = WorkerPoolStatus(conditions=conditions, observedGeneration=generation)
    await memo.autoscaler.status.write(target, status)
    await memo.kube.event(target, error.reason, error.message, "Warning")
