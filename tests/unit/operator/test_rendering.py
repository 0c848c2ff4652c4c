"""WorkerPool parsing and Deployment rendering, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from shoal_operator.errors import InvalidSpec
from shoal_operator.rendering import HEALTH_PORT, render_deployment
from shoal_operator.spec import TLS_MOUNT_PATH, SecretKey, parse_queue, parse_worker_pool


def pool_body(**spec: Any) -> dict[str, Any]:
    base = {
        "queues": [{"name": "emails"}],
        "image": "registry.example/app:1.2",
        "app": "myproject.tasks:app",
    }
    return {
        "metadata": {
            "name": "mailers",
            "namespace": "prod",
            "annotations": {"shoal.dev/paused": "true"},
        },
        "spec": {**base, **spec},
    }


def test_the_deployment_runs_the_worker_with_the_secret_and_a_longer_grace() -> None:
    pool = parse_worker_pool(
        pool_body(
            concurrency=8,
            shutdownTimeoutSeconds=45,
            template={
                "env": [{"name": "FEATURE", "value": "on"}],
                "nodeSelector": {"pool": "jobs"},
                "labels": {"team": "mail"},
                "serviceAccountName": "mailer",
            },
        )
    )
    deployment = render_deployment(
        pool,
        owner_uid="uid-1",
        queue_names=["emails", "bulk"],
        url_secret=SecretKey("db", "url"),
        replicas=3,
    )
    assert deployment["metadata"]["name"] == "mailers-workers"
    assert deployment["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "shoal.dev/v1alpha1",
            "kind": "WorkerPool",
            "name": "mailers",
            "uid": "uid-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert deployment["metadata"]["labels"]["app.kubernetes.io/instance"] == "mailers"
    spec = deployment["spec"]
    assert spec["replicas"] == 3
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 60  # 45 s drain + 15 s margin
    [container] = pod["containers"]
    assert container["command"] == ["shoal"]
    assert container["args"][:6] == [
        "worker",
        "myproject.tasks:app",
        "--queues",
        "emails,bulk",
        "--concurrency",
        "8",
    ]
    assert container["args"][6:8] == ["--shutdown-timeout", "45"]
    [url] = [e for e in container["env"] if e["name"] == "SHOAL_BACKEND_URL"]
    assert url == {
        "name": "SHOAL_BACKEND_URL",
        "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}},
    }
    assert {"name": "FEATURE", "value": "on"} in container["env"]
    assert {"name": "health", "containerPort": HEALTH_PORT} in container["ports"]
    assert container["args"][container["args"].index("--health-port") + 1] == str(HEALTH_PORT)
    for probe, path in (("livenessProbe", "/livez"), ("readinessProbe", "/readyz")):
        assert container[probe]["httpGet"] == {"path": path, "port": "health"}
        assert container[probe]["timeoutSeconds"] >= 2  # explicit, not Kubernetes' 1 s
        assert "exec" not in container[probe]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["nodeSelector"] == {"pool": "jobs"} and pod["serviceAccountName"] == "mailer"
    assert spec["template"]["metadata"]["labels"]["team"] == "mail"
    assert "tolerations" not in pod  # empty overrides are left out, not rendered empty
    assert pool.paused


def test_a_grace_override_must_exceed_the_drain() -> None:
    assert parse_worker_pool(pool_body(terminationGracePeriodSeconds=90)).grace_period == 90
    with pytest.raises(InvalidSpec, match=r"must exceed spec\.shutdownTimeoutSeconds"):
        parse_worker_pool(pool_body(shutdownTimeoutSeconds=60, terminationGracePeriodSeconds=60))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"queues": []}, r"spec\.queues: .* at least 1 item"),
        ({"app": "no-colon"}, r"spec\.app: string should match pattern .*, not 'no-colon'"),
        ({"concurrency": 0}, r"spec\.concurrency: input should be greater than or equal to 1"),
        ({"prefetch": -1}, r"spec\.prefetch: input should be greater than or equal to 0"),
        (
            {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
            r"spec\.autoscaling: minReplicas \(5\) exceeds maxReplicas \(2\)",
        ),
        ({"image": ""}, r"spec\.image: string should have at least 1 character"),
        ({"autoscaling": {"idleCooldownSeconds": "soon"}}, "spec.autoscaling.idleCooldownSeconds"),
    ],
)
def test_malformed_pools_say_what_to_fix(change: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        parse_worker_pool(pool_body(**change))


def pod_of(**change: Any) -> dict[str, Any]:
    """The pod template of the Deployment rendered for a pool with ``change``."""
    deployment = render_deployment(
        parse_worker_pool(pool_body(**change)),
        owner_uid="uid-1",
        queue_names=["emails"],
        url_secret=SecretKey("db", "url"),
        replicas=1,
    )
    pod: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return pod


@pytest.mark.parametrize("prefetch", [None, 0, 40])
def test_prefetch_is_passed_only_when_set(prefetch: int | None) -> None:
    change = {} if prefetch is None else {"prefetch": prefetch}
    [container] = pod_of(**change)["containers"]
    args = container["args"]
    if prefetch is None:
        assert "--prefetch" not in args  # the worker decides: automatic
    else:
        assert args[args.index("--prefetch") + 1] == str(prefetch)


def test_target_per_replica_defaults_to_concurrency() -> None:
    assert parse_worker_pool(pool_body(concurrency=7)).autoscaling.target_per_replica == 7


def test_queue_names_default_to_the_object_name() -> None:
    body = {
        "metadata": {"name": "emails", "namespace": "prod"},
        "spec": {"backend": {"urlSecretRef": {"name": "db", "key": "url"}}},
    }
    queue = parse_queue(body)
    assert (queue.queue_name, queue.url_secret) == ("emails", SecretKey("db", "url"))
    with pytest.raises(InvalidSpec, match=r"spec\.backend\.urlSecretRef: field required"):
        parse_queue({"metadata": {"name": "x"}, "spec": {"backend": {}}})


def test_tls_certificates_are_mounted_read_only_from_the_secret() -> None:
    assert [v["name"] for v in pod_of()["volumes"]] == ["scratch"]
    pod = pod_of(tls={"secretName": "db-certs"})
    assert {"name": "tls", "secret": {"secretName": "db-certs", "defaultMode": 0o444}} in (
        pod["volumes"]
    )
    [container] = pod["containers"]
    assert {"name": "tls", "mountPath": TLS_MOUNT_PATH, "readOnly": True} in (
        container["volumeMounts"]
    )
    assert TLS_MOUNT_PATH == "/etc/shoal/tls"  # documented in the CRD and the chart README
    with pytest.raises(InvalidSpec, match=r"spec\.tls\.secretName"):
        parse_worker_pool(pool_body(tls={"secretName": ""}))
