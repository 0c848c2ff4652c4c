"""The test cluster itself, on a real kube-apiserver: what the operator's tests rely on.

The API answers; CRDs with CEL rules reject what they should; kube-controller-manager turns a
Deployment into a ReplicaSet and garbage-collects owned objects; helm runs; RBAC is on, so
impersonation answers "no" for a service account nobody bound.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from tests.servers.kubernetes import KubernetesCluster, eventually

WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.smoke.shoal.dev"},
    "spec": {
        "group": "smoke.shoal.dev",
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["min", "max"],
                                "properties": {
                                    "min": {"type": "integer", "minimum": 0},
                                    "max": {"type": "integer", "minimum": 0},
                                },
                                "x-kubernetes-validations": [
                                    {
                                        "rule": "self.min <= self.max",
                                        "message": "min must not exceed max",
                                    }
                                ],
                            }
                        },
                    }
                },
            }
        ],
    },
}


def widget(namespace: str, name: str, low: int, high: int) -> str:
    return json.dumps(
        {
            "apiVersion": "smoke.shoal.dev/v1",
            "kind": "Widget",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"min": low, "max": high},
        }
    )


def test_the_api_answers(kube_cluster: KubernetesCluster) -> None:
    assert kube_cluster.kubectl("get", "--raw", "/readyz").stdout == "ok"
    versions = json.loads(kube_cluster.kubectl("version", "-o", "json").stdout)
    assert versions["serverVersion"]["major"] == "1"
    if not kube_cluster.external:  # the apiserver and kubectl come from one build
        assert versions["serverVersion"]["gitVersion"] == versions["clientVersion"]["gitVersion"]


def test_a_cel_rule_rejects_a_violating_object(
    kube_cluster: KubernetesCluster, kube_namespace: str
) -> None:
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(WIDGET_CRD))
    try:
        check_cel_rule(kube_cluster, kube_namespace)
    finally:  # CRDs are cluster-wide: leave none behind in a shared cluster
        kube_cluster.kubectl("delete", "crd", "widgets.smoke.shoal.dev", "--wait=false")


def check_cel_rule(kube_cluster: KubernetesCluster, kube_namespace: str) -> None:
    kube_cluster.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.smoke.shoal.dev", "--timeout=30s"
    )

    # Discovery can lag the Established condition by a moment: retry the valid one until served.
    def accepted() -> bool:
        result = kube_cluster.kubectl(
            "apply", "-f", "-", input=widget(kube_namespace, "fine", 1, 2), check=False
        )
        return result.returncode == 0

    eventually(accepted, timeout=30, what="Widget accepted")
    rejected = kube_cluster.kubectl(
        "apply", "-f", "-", input=widget(kube_namespace, "upside-down", 3, 2), check=False
    )
    assert rejected.returncode != 0
    assert "min must not exceed max" in rejected.stderr
    assert "spec" in rejected.stderr  # the message names the field it is about
    widgets = kube_cluster.kubectl_json("get", "widgets", "-n", kube_namespace)
    assert [item["metadata"]["name"] for item in widgets["items"]] == ["fine"]


def test_the_controller_manager_runs_deployments_and_collects_garbage(
    kube_cluster: KubernetesCluster, kube_namespace: str
) -> None:
    ns = ("-n", kube_namespace)
    kube_cluster.kubectl("create", "configmap", "owner", *ns)
    owner = kube_cluster.kubectl_json("get", "configmap", "owner", *ns)
    name = f"owned-{uuid.uuid4().hex[:6]}"
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "example.invalid/none:1"}]},
            },
        },
    }
    kube_cluster.kubectl("apply", *ns, "-f", "-", input=json.dumps(deployment))

    def replica_set() -> dict[str, Any] | None:
        found = kube_cluster.kubectl_json("get", "replicasets", *ns, "-l", f"app={name}")
        for item in found["items"]:
            if any(ref["name"] == name for ref in item["metadata"].get("ownerReferences", [])):
                return dict(item)
        return None

    created = eventually(replica_set, timeout=60, what="ReplicaSet for the Deployment")
    assert created["spec"]["replicas"] == 2

    kube_cluster.kubectl("delete", "configmap", "owner", *ns)

    def collected() -> bool:
        left = kube_cluster.kubectl("get", "deployment", name, *ns, "--ignore-not-found")
        return left.stdout.strip() == ""

    eventually(collected, timeout=60, what="garbage collection of the owned Deployment")


def test_helm_runs(kube_cluster: KubernetesCluster) -> None:
    version = kube_cluster.helm("version", "--short").stdout.strip()
    assert version.startswith("v3.")
    assert kube_cluster.helm("list", "--all-namespaces").returncode == 0


def test_rbac_is_on_for_impersonated_service_accounts(
    kube_cluster: KubernetesCluster, kube_namespace: str
) -> None:
    ns = ("-n", kube_namespace)
    account = f"system:serviceaccount:{kube_namespace}:worker"
    kube_cluster.kubectl("create", "serviceaccount", "worker", *ns)

    def can_i(*args: str) -> str:
        return kube_cluster.kubectl("auth", "can-i", *args, *ns, check=False).stdout.strip()

    assert can_i("get", "pods") == "yes"  # the admin
    assert can_i("get", "pods", "--as", account) == "no"

    kube_cluster.kubectl("create", "role", "pod-reader", "--verb=get,list", "--resource=pods", *ns)
    kube_cluster.kubectl(
        "create", "rolebinding", "worker-reads-pods", "--role=pod-reader",
        f"--serviceaccount={kube_namespace}:worker", *ns,
    )  # fmt: skip
    assert can_i("get", "pods", "--as", account) == "yes"
    assert can_i("delete", "pods", "--as", account) == "no"
