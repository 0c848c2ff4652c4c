"""The Deployment a WorkerPool owns, rendered from its spec. Pure: no API calls.

The pod runs ``shoal worker <app>``; the backend URL reaches it through ``env.valueFrom`` a
Secret, never copied into the Deployment; certificates for TLS to the backend, from the
Secret the pool's ``tls.secretName`` names, are mounted read-only at ``/etc/shoal/tls``.
SIGTERM starts the worker's drain (no preStop
hook), and ``terminationGracePeriodSeconds`` is the shutdown timeout plus a margin, so the
kubelet's SIGKILL never lands on a worker still finishing a task.
"""

from __future__ import annotations

from typing import Any

from shoal_operator.spec import API_VERSION, TLS_MOUNT_PATH, SecretKey, WorkerPoolSpec

METRICS_PORT = 9090
HEALTH_PORT = 8080
"""Where the worker serves ``/livez`` and ``/readyz`` (``--health-port``), from a thread."""
LEASE_SECONDS = 30
"""The workers' lease: a worker is no longer live after a whole lease without heartbeats."""
PROBE_TIMEOUT = 2
"""Seconds a probe may take. The endpoint answers from a thread in milliseconds however
busy the worker is; Kubernetes' default of 1 s leaves no room for a node under load."""

MANAGED_BY = "shoal-operator"
POOL_LABEL = "shoal.dev/pool"


def labels(pool: WorkerPoolSpec) -> dict[str, str]:
    """The ``app.kubernetes.io`` labels of everything a pool owns, and its selector label."""
    return {
        "app.kubernetes.io/name": "shoal-worker",
        "app.kubernetes.io/instance": pool.name,
        "app.kubernetes.io/component": "worker",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        POOL_LABEL: pool.name,
    }


def deployment_name(pool: WorkerPoolSpec) -> str:
    return f"{pool.name}-workers"


def render_deployment(
    pool: WorkerPoolSpec,
    *,
    owner_uid: str,
    queue_names: list[str],
    url_secret: SecretKey,
    replicas: int,
) -> dict[str, Any]:
    """The whole Deployment, as the operator wants it (server-side apply friendly)."""
    pod_labels = {**pool.pod.labels, **labels(pool)}
    # An HTTP GET answered by the worker's own thread: an exec probe would start a Python
    # process per probe (about a second of wall time and 0.7 s of CPU, bench/RESULTS.md).
    liveness = {
        "httpGet": {"path": "/livez", "port": "health"},
        "initialDelaySeconds": 5,
        "periodSeconds": 10,
        "timeoutSeconds": PROBE_TIMEOUT,
        "failureThreshold": 3,
    }
    readiness = {
        "httpGet": {"path": "/readyz", "port": "health"},
        "initialDelaySeconds": 1,
        "periodSeconds": 5,
        "timeoutSeconds": PROBE_TIMEOUT,
        "failureThreshold": 2,
    }
    container: dict[str, Any] = {
        "name": "worker",
        "image": pool.image,
        "command": ["shoal"],
        "args": [
            "worker",
            pool.app,
            "--queues",
            ",".join(queue_names),
            "--concurrency",
            str(pool.concurrency),
            "--shutdown-timeout",
            str(pool.shutdown_timeout),
            "--lease-seconds",
            str(LEASE_SECONDS),
            "--health-port",
            str(HEALTH_PORT),
            "--metrics-port",
            str(METRICS_PORT),
            *([] if pool.prefetch is None else ["--prefetch", str(pool.prefetch)]),
        ],
        "env": [
            {
                "name": "SHOAL_BACKEND_URL",
                "valueFrom": {"secretKeyRef": {"name": url_secret.name, "key": url_secret.key}},
            },
            # Workers report the pod name as their host: the operator maps each worker's
            # in-flight count to its pod for the pod deletion cost.
            {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "SHOAL_LOG_FORMAT", "value": "json"},
            *pool.pod.env,
        ],
        "ports": [
            {"name": "metrics", "containerPort": METRICS_PORT},
            {"name": "health", "containerPort": HEALTH_PORT},
        ],
        "livenessProbe": liveness,
        "readinessProbe": readiness,
        # A worker that cannot start prints one line and exits 2 (an unknown app path) or,
        # after retrying for its start-up timeout, 3 (an unreachable backend): the kubelet
        # keeps that line, and the operator reports it.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
    }
    if pool.pod.resources:
        container["resources"] = dict(pool.pod.resources)
    volumes: list[dict[str, Any]] = [{"name": "scratch", "emptyDir": {}}]
    if pool.tls is not None:
        # Readable by the worker's (non-root, unknown) user: the pod is its only reader.
        secret = {"secretName": pool.tls.secret_name, "defaultMode": 0o444}
        volumes.append({"name": "tls", "secret": secret})
        mount = {"name": "tls", "mountPath": TLS_MOUNT_PATH, "readOnly": True}
        container["volumeMounts"].append(mount)
    pod_spec: dict[str, Any] = {
        "terminationGracePeriodSeconds": pool.grace_period,
        "containers": [container],
        "volumes": volumes,
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
    }
    optional = {
        "nodeSelector": dict(pool.pod.node_selector),
        "tolerations": list(pool.pod.tolerations),
        "affinity": dict(pool.pod.affinity),
        "serviceAccountName": pool.pod.service_account_name,
        "imagePullSecrets": list(pool.pod.image_pull_secrets),
    }
    pod_spec.update({key: value for key, value in optional.items() if value})
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": deployment_name(pool),
            "namespace": pool.namespace,
            "labels": labels(pool),
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "WorkerPool",
                    "name": pool.name,
                    "uid": owner_uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {POOL_LABEL: pool.name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": pod_labels, "annotations": dict(pool.pod.annotations)},
                "spec": pod_spec,
            },
        },
    }
