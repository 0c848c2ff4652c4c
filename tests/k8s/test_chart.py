"""The helm chart on a real kube-apiserver: lint, render, dry-run, install, least privilege.

The matrix: every check of the rendered chart runs for each set of values in
:data:`VALUE_SETS` (the defaults; the namespaced RBAC; everything optional switched on).
Then the chart is installed, and the operator runs as a process with nothing but a token of
the chart's ServiceAccount: it must reconcile and scale a WorkerPool end to end, and
``kubectl auth can-i`` must answer yes to what it needs and no to what it does not.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as kubernetes_client
from kubernetes_asyncio import config
from kubernetes_asyncio.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from tests.k8s.conftest import (
    ROOT,
    Operator,
    apply,
    backend_objects,
    eventually,
    finish_all,
    migrate,
    push,
    replicas,
)
from tests.servers.kubernetes import CommandFailed, KubernetesCluster

CHART = ROOT / "charts" / "shoal"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {
        "group": "monitoring.coreos.com",
        "scope": "Namespaced",
        "names": {
            "plural": "servicemonitors",
            "singular": "servicemonitor",
            "kind": "ServiceMonitor",
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "x-kubernetes-preserve-unknown-fields": True,
                    }
                },
            }
        ],
    },
}
"""A stand-in for the Prometheus Operator's CRD: enough for the API to accept the object."""

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "namespaced": {"watchNamespaces": ["{team_a}", "{team_b}"]},
    "everything": {
        "fullnameOverride": "jobs",
        "image": {"repository": "registry.example/shoal-operator", "tag": "1.2.3"},
        "imagePullSecrets": [{"name": "regcred"}],
        "serviceAccount": {"annotations": {"example.com/role": "shoal"}},
        "verbose": True,
        "metrics": {
            "port": 9100,
            "service": {"enabled": True, "annotations": {"prometheus.io/scrape": "true"}},
            "serviceMonitor": {"enabled": True, "interval": "15s", "labels": {"release": "kps"}},
        },
        "healthPort": 9101,
        "podDisruptionBudget": {"enabled": True, "minAvailable": 1},
        "replicas": 3,
        "leaderElection": {"enabled": True, "leaseSeconds": 15},
        "podAnnotations": {"example.com/team": "jobs"},
        "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "jobs", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassName": "system-cluster-critical",
        "tls": {"secretName": "backend-certs"},
    },
    "board": {
        "board": {
            "enabled": True,
            "backendUrlSecret": {"name": "jobs-db", "key": "url"},
            "credentialsSecret": "board-login",
            "ingress": {
                "enabled": True,
                "className": "nginx",
                "host": "board.jobs.example",
                "tlsSecretName": "board-tls",
            },
        },
    },
}


def values_file(directory: Path, name: str, namespaces: dict[str, str]) -> Path:
    """The value set as a file, with namespace placeholders filled in."""
    text = json.dumps(VALUE_SETS[name])
    for key, namespace in namespaces.items():
        text = text.replace(f"{{{key}}}", namespace)
    path = directory / f"{name}.values.json"  # JSON is YAML
    path.write_text(text)
    return path


def render(cluster: KubernetesCluster, values: Path, namespace: str, *extra: str) -> str:
    return cluster.helm(
        "template", "shoal", str(CHART), "--namespace", namespace, "-f", str(values), *extra
    ).stdout


def documents(manifest: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


@pytest.fixture(scope="module")
def monitoring_crd(kube_cluster: KubernetesCluster) -> Iterator[None]:
    kube_cluster.kubectl("apply", "-f", "-", input=json.dumps(SERVICE_MONITOR_CRD))
    kube_cluster.kubectl(
        "wait",
        "--for=condition=Established",
        "crd/servicemonitors.monitoring.coreos.com",
        "--timeout=60s",
    )
    yield
    kube_cluster.kubectl("delete", "crd", "servicemonitors.monitoring.coreos.com", "--wait=false")


@pytest.fixture
def namespaces(kube_cluster: KubernetesCluster) -> Iterator[dict[str, str]]:
    """Two more namespaces, for the namespaced RBAC."""
    made = {
        key: f"shoal-{key.replace('_', '-')}-{uuid.uuid4().hex[:8]}" for key in ("team_a", "team_b")
    }
    for name in made.values():
        kube_cluster.kubectl("create", "namespace", name)
    yield made
    for name in made.values():
        kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")


# -- the chart as files ------------------------------------------------------------------------


def test_the_charts_crds_are_the_repositorys_crds() -> None:
    """One source of truth: the chart's crds/ is a link to the repository's crds/."""
    link = CHART / "crds"
    assert link.is_symlink() and link.resolve() == (ROOT / "crds").resolve()


SCHEMA_KEYWORDS = {
    "type", "description", "properties", "items", "required", "default", "enum", "format",
    "minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern",
    "additionalProperties", "nullable", "anyOf", "oneOf", "allOf", "not",
}  # fmt: skip


def test_every_crd_schema_node_uses_only_openapi_keywords() -> None:
    """An unquoted comma in a flow mapping (``{type: integer, description: a, b}``) adds a
    bogus key that the API server accepts on create and refuses on the next apply."""

    def unknown(node: dict[str, Any], path: str) -> Iterator[str]:
        for key in node:
            if key not in SCHEMA_KEYWORDS and not key.startswith("x-kubernetes-"):
                yield f"{path or '.'}: {key!r}"
        for name, child in (node.get("properties") or {}).items():
            yield from unknown(child, f"{path}.{name}")
        if isinstance(node.get("items"), dict):
            yield from unknown(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            yield from unknown(node["additionalProperties"], f"{path}.*")

    for path in sorted((ROOT / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        for version in crd["spec"]["versions"]:
            found = list(unknown(version["schema"]["openAPIV3Schema"], ""))
            assert not found, f"{path.name}: not OpenAPI schema keywords: {found}"


def test_every_value_has_a_doc_comment() -> None:
    """Each value (or an ancestor) is preceded by a ``# --`` comment, helm-docs style."""
    lines = (CHART / "values.yaml").read_text().splitlines()
    documented: set[tuple[str, ...]] = set()
    stack: list[tuple[int, str]] = []
    comment_open = False
    for line in lines:
        stripped = line.strip()
        if stripped.startswith("# --"):
            comment_open = True
            continue
        if stripped.startswith("#") or not stripped:
            continue
        match = re.match(r"^(\s*)([\w.-]+):", line)
        if match is None:
            continue  # a list item of a flow or block sequence
        indent = len(match[1])
        stack = [(i, k) for i, k in stack if i < indent] + [(indent, match[2])]
        if comment_open:
            documented.add(tuple(k for _, k in stack))
        comment_open = False

    def leaves(node: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                yield from leaves(value, (*path, key))
        else:
            yield path

    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for leaf in leaves(values, ()):
        assert any(leaf[:n] in documented for n in range(1, len(leaf) + 1)), (
            f"{'.'.join(leaf)} has no `# --` comment"
        )


def test_every_rbac_rule_says_what_it_is_for() -> None:
    text = (CHART / "templates" / "_helpers.tpl").read_text()
    text += (CHART / "templates" / "rbac.yaml").read_text()
    lines = text.splitlines()
    rules = [n for n, line in enumerate(lines) if line.strip().startswith("- apiGroups:")]
    assert len(rules) >= 10
    for n in rules:
        assert lines[n - 1].strip().startswith("#"), f"no comment above: {lines[n]}"


# -- helm lint and template --------------------------------------------------------------------


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_helm_lint(
    kube_cluster: KubernetesCluster, tmp_path: Path, value_set: str, namespaces: dict[str, str]
) -> None:
    values = values_file(tmp_path, value_set, namespaces)
    result = kube_cluster.helm("lint", "--strict", str(CHART), "-f", str(values))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"watchNamespaces": "team-a"}, "watchNamespaces"),
        ({"replicaCount": 2}, "replicaCount"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"metrics": {"port": "8080"}}, "port"),
        (
            {"metrics": {"service": {"enabled": False}, "serviceMonitor": {"enabled": True}}},
            "needs metrics.service.enabled",
        ),
        ({"serviceAccount": {"create": False}}, "serviceAccount.name is required"),
        (
            {"leaderElection": {"enabled": False, "leaseSeconds": 10}},
            "replicas > 1 needs leaderElection.enabled",
        ),
        ({"leaderElection": {"enabled": True, "leaseSeconds": 1}}, "leaseSeconds"),
        ({"board": {"enabled": True}}, "board.backendUrlSecret.name names the Secret"),
        (
            {"board": {"enabled": True, "backendUrlSecret": {"name": "db", "key": "url"}}},
            "board.credentialsSecret names the Secret",
        ),
    ],
)
def test_helm_refuses_values_that_are_wrong(
    kube_cluster: KubernetesCluster, tmp_path: Path, values: dict[str, Any], message: str
) -> None:
    path = tmp_path / "values.json"
    path.write_text(json.dumps(values))
    with pytest.raises(CommandFailed) as caught:
        render(kube_cluster, path, "default")
    assert message in str(caught.value)


def test_the_default_render(kube_cluster: KubernetesCluster, tmp_path: Path) -> None:
    docs = documents(render(kube_cluster, values_file(tmp_path, "defaults", {}), "shoal-system"))
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "PodDisruptionBudget",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        *["ValidatingAdmissionPolicy"] * 2,
        *["ValidatingAdmissionPolicyBinding"] * 2,
    ]
    [deployment] = by_kind(docs, "Deployment")
    spec = deployment["spec"]
    # Two replicas, one acting: a rollout adds a standby before it stops the leader.
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
    }
    [pdb] = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"] == spec["selector"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "shoal-operator:0.1.0"  # the chart's appVersion
    assert container["args"] == [
        "--liveness",
        "http://0.0.0.0:8081/healthz",
        "--leader-election",
        "--lease-name",
        "shoal-operator",
        "--lease-seconds",
        "8",
    ]
    namespace = {"fieldRef": {"fieldPath": "metadata.namespace"}}
    assert {"name": "POD_NAMESPACE", "valueFrom": namespace} in container["env"]
    [role] = by_kind(docs, "Role")
    assert role["metadata"]["namespace"] == "shoal-system"
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": ["shoal-operator"],
            "verbs": ["get", "update"],
        },
    ]
    assert {"name": "SHOAL_OPERATOR_METRICS_PORT", "value": "8080"} in container["env"]
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "healthz"}
        assert container[probe]["timeoutSeconds"] >= 2  # explicit, not Kubernetes' 1 s
    assert {"name": "healthz", "containerPort": 8081} in container["ports"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["resources"]["limits"]["memory"]
    [account] = by_kind(docs, "ServiceAccount")
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    [service] = by_kind(docs, "Service")
    assert service["spec"]["ports"][0]["port"] == 8080
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]
    for doc in docs:
        labels = doc["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert labels["app.kubernetes.io/instance"] == "shoal"


def test_a_single_operator_without_a_lease(kube_cluster: KubernetesCluster, tmp_path: Path) -> None:
    path = tmp_path / "values.json"
    path.write_text(
        json.dumps({"replicas": 1, "leaderElection": {"enabled": False, "leaseSeconds": 10}})
    )
    docs = documents(render(kube_cluster, path, "shoal-system"))
    [deployment] = by_kind(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert "--leader-election" not in container["args"]
    assert not by_kind(docs, "Role")


def test_the_namespaced_render(
    kube_cluster: KubernetesCluster, tmp_path: Path, namespaces: dict[str, str]
) -> None:
    values = values_file(tmp_path, "namespaced", namespaces)
    docs = documents(render(kube_cluster, values, "shoal-system"))
    # A Role in each listed namespace, and the leader election's in the release namespace.
    expected = sorted([*namespaces.values(), "shoal-system"])
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == expected
    bindings = by_kind(docs, "RoleBinding")
    assert sorted(b["metadata"]["namespace"] for b in bindings) == expected
    [observer] = by_kind(docs, "ClusterRole")
    assert {r["resources"][0] for r in observer["rules"]} == {
        "customresourcedefinitions",
        "namespaces",
    }
    assert all(set(r["verbs"]) == {"list", "watch"} for r in observer["rules"])
    [deployment] = by_kind(docs, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    expected = [f"--namespace={ns}" for ns in (namespaces["team_a"], namespaces["team_b"])]
    assert [f"{a}={b}" for a, b in zip(args[2:6:2], args[3:6:2], strict=True)] == expected


def test_everything_switched_on(kube_cluster: KubernetesCluster, tmp_path: Path) -> None:
    docs = documents(render(kube_cluster, values_file(tmp_path, "everything", {}), "jobs"))
    assert {d["metadata"]["name"] for d in docs} >= {"jobs", "jobs-operator", "jobs-metrics"}
    [pdb] = by_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 and "maxUnavailable" not in pdb["spec"]
    [monitor] = by_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["endpoints"] == [
        {"port": "metrics", "path": "/metrics", "interval": "15s"}
    ]
    [deployment] = by_kind(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "registry.example/shoal-operator:1.2.3"
    assert container["args"] == [
        "--liveness",
        "http://0.0.0.0:9101/healthz",
        "--verbose",
        "--leader-election",
        "--lease-name",
        "jobs-operator",
        "--lease-seconds",
        "15",
    ]
    assert deployment["spec"]["replicas"] == 3
    [role] = by_kind(docs, "Role")
    assert role["rules"][1]["resourceNames"] == ["jobs-operator"]
    assert {"name": "SHOAL_OPERATOR_METRICS_PORT", "value": "9100"} in container["env"]
    assert pod["priorityClassName"] == "system-cluster-critical"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    # The stats connections' certificates, read-only where the backend URLs name them.
    assert {"name": "tls", "mountPath": "/etc/shoal/tls", "readOnly": True} in (
        container["volumeMounts"]
    )
    assert {"name": "tls", "secret": {"secretName": "backend-certs", "defaultMode": 0o444}} in (
        pod["volumes"]
    )


def test_the_board_render(kube_cluster: KubernetesCluster, tmp_path: Path) -> None:
    """Off by default (the default render above has no board); on, a Deployment of the runtime
    image, a Service and an Ingress, with the URL and the credentials from Secrets."""
    docs = documents(render(kube_cluster, values_file(tmp_path, "board", {}), "jobs"))
    board = [d for d in docs if d["metadata"]["name"] == "shoal-board"]
    assert sorted(d["kind"] for d in board) == ["Deployment", "Ingress", "Service"]
    [deployment] = by_kind(board, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["image"] == "shoal:0.1.0"
    assert container["args"] == ["board", "--board-host", "0.0.0.0", "--board-port", "8080"]
    assert container["env"] == [
        {
            "name": "SHOAL_BACKEND_URL",
            "valueFrom": {"secretKeyRef": {"name": "jobs-db", "key": "url"}},
        }
    ]
    assert container["envFrom"] == [{"secretRef": {"name": "board-login"}}]
    assert container["readinessProbe"]["tcpSocket"] == {"port": "http"}
    assert pod["automountServiceAccountToken"] is False
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert [m["name"] for m in container["volumeMounts"]] == ["tmp"]  # no values.tls: none
    labels = deployment["spec"]["selector"]["matchLabels"]
    assert labels["app.kubernetes.io/component"] == "board"
    [service] = by_kind(board, "Service")
    assert service["spec"]["selector"] == labels
    [operator] = [d for d in by_kind(docs, "Deployment") if d is not deployment]
    assert operator["spec"]["selector"]["matchLabels"] != labels  # no pod serves both
    [ingress] = by_kind(board, "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["board.jobs.example"], "secretName": "board-tls"}]
    [rule] = ingress["spec"]["rules"]
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "shoal-board",
        "port": {"name": "http"},
    }


def test_no_admission_policies_before_kubernetes_1_30(
    kube_cluster: KubernetesCluster, tmp_path: Path
) -> None:
    values = values_file(tmp_path, "defaults", {})
    docs = documents(render(kube_cluster, values, "shoal-system", "--kube-version", "1.29.0"))
    assert not [d for d in docs if d["kind"].startswith("ValidatingAdmissionPolicy")]
    assert by_kind(docs, "ClusterRole")  # the RBAC is there all the same


def test_helm_template_includes_the_crds_unchanged(
    kube_cluster: KubernetesCluster, tmp_path: Path
) -> None:
    values = values_file(tmp_path, "defaults", {})
    rendered = by_kind(
        documents(render(kube_cluster, values, "shoal-system", "--include-crds")),
        "CustomResourceDefinition",
    )
    ours = [yaml.safe_load(path.read_text()) for path in sorted((ROOT / "crds").glob("*.yaml"))]
    key = lambda d: d["metadata"]["name"]  # noqa: E731
    assert sorted(rendered, key=key) == sorted(ours, key=key)


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_the_api_server_accepts_the_rendered_chart(
    kube_cluster: KubernetesCluster,
    kube_namespace: str,
    tmp_path: Path,
    value_set: str,
    namespaces: dict[str, str],
    monitoring_crd: None,
) -> None:
    values = values_file(tmp_path, value_set, namespaces)
    manifest = render(kube_cluster, values, kube_namespace, "--include-crds")
    # Every namespaced object names its namespace: `helm template | kubectl apply` needs no -n.
    result = kube_cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest)
    applied = result.stdout.splitlines()
    assert len(applied) == len(documents(manifest))
    assert all("(server dry run)" in line for line in applied)


# -- installed ---------------------------------------------------------------------------------


class Installed:
    """A release of the chart, and a kubeconfig holding only its ServiceAccount's token."""

    def __init__(self, cluster: KubernetesCluster, directory: Path, values: Path) -> None:
        self.cluster = cluster
        self.namespace = f"shoal-system-{uuid.uuid4().hex[:8]}"
        self.release = f"shoal-{uuid.uuid4().hex[:8]}"
        cluster.kubectl("create", "namespace", self.namespace)
        self.output = cluster.helm(
            "install", self.release, str(CHART), "--namespace", self.namespace, "-f", str(values)
        ).stdout
        self.account = self.release  # the full name: the release name contains "shoal"
        self.user = f"system:serviceaccount:{self.namespace}:{self.account}"
        self.kubeconfig = directory / "operator.kubeconfig"
        self.kubeconfig.write_text(json.dumps(self._kubeconfig()))

    def _kubeconfig(self) -> dict[str, Any]:
        token = self.cluster.kubectl(
            "create", "token", self.account, "-n", self.namespace, "--duration=2h"
        ).stdout.strip()
        admin = self.cluster.kubectl_json("config", "view", "--raw", "--minify")
        [cluster] = admin["clusters"]
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "test", "cluster": cluster["cluster"]}],
            "users": [{"name": self.account, "user": {"token": token}}],
            "contexts": [{"name": "sa", "context": {"cluster": "test", "user": self.account}}],
            "current-context": "sa",
        }

    def can(self, verb: str, resource: str, namespace: str | None = None) -> bool:
        target = ["-n", namespace] if namespace else []
        resource, _, subresource = resource.partition("/")
        if subresource:  # `can-i VERB TYPE/NAME` would name an object, not a subresource
            target += [f"--subresource={subresource}"]
        result = self.cluster.kubectl(
            "auth", "can-i", verb, resource, "--as", self.user, *target, check=False
        )
        answer = result.stdout.strip()
        assert answer in ("yes", "no"), result.stderr
        return answer == "yes"

    def call(self, api: str, method: str, *args: Any, **kwargs: Any) -> str:
        """One API call with the ServiceAccount's token: "allowed", or the refusal's body."""

        async def run() -> str:
            client = await config.new_client_from_config(str(self.kubeconfig))
            async with client:
                try:
                    await getattr(getattr(kubernetes_client, api)(client), method)(*args, **kwargs)
                except ApiException as error:
                    return str(error.body)
            return "allowed"

        return asyncio.run(run())

    def uninstall(self) -> None:
        self.cluster.helm("uninstall", self.release, "--namespace", self.namespace, check=False)
        self.cluster.kubectl("delete", "namespace", self.namespace, "--wait=false", check=False)


RBAC_DENIAL = re.compile(
    r'forbidden: User \\?"[^"\\]+\\?" cannot [\w-]+ resource|Not enough permissions'
)
"""How the API server words an RBAC refusal (the quotes JSON-escaped in a logged response
body; other 403s, e.g. a namespace being deleted, are not about permissions), and how kopf
says it lacks some."""


def assert_no_permission_errors(operator: Operator) -> None:
    """Nothing the operator did was refused by RBAC, not even best-effort calls it only logs."""
    log = operator.log.read_text()
    denials = sorted({m[0] for m in RBAC_DENIAL.finditer(log)})
    assert not denials, f"refused: {denials}"


@pytest.fixture(scope="module")
def installed(
    crds: KubernetesCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    """The chart with its default values, and the operator running with only its token."""
    directory = tmp_path_factory.mktemp("chart")
    values = directory / "values.json"
    values.write_text("{}")
    release = Installed(crds, directory, values)
    yield release
    release.uninstall()


@pytest.fixture(scope="module")
def chart_operator(
    installed: Installed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    # As the chart runs it: campaigning for the chart's Lease, with the chart's rights.
    running = Operator(
        installed.cluster,
        tmp_path_factory.mktemp("chart-operator"),
        kubeconfig=installed.kubeconfig,
        args=[
            "--leader-election",
            "--lease-namespace",
            installed.namespace,
            "--lease-name",
            f"{installed.release}-operator",
        ],
    )
    yield running
    running.stop()


def test_helm_install_creates_the_operator(installed: Installed) -> None:
    assert "STATUS: deployed" in installed.output
    assert "kubectl apply --server-side -f crds/" in installed.output  # NOTES.txt
    deployment = installed.cluster.kubectl_json(
        "get", "deployment", f"{installed.release}-operator", "-n", installed.namespace
    )
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == installed.account
    status = installed.cluster.helm("status", installed.release, "-n", installed.namespace)
    assert "STATUS: deployed" in status.stdout


NEEDED = [
    ("get", "queues.shoal.dev"),
    ("list", "queues.shoal.dev"),
    ("watch", "queues.shoal.dev"),
    ("patch", "queues.shoal.dev"),
    ("patch", "queues.shoal.dev/status"),
    ("list", "workerpools.shoal.dev"),
    ("watch", "workerpools.shoal.dev"),
    ("patch", "workerpools.shoal.dev"),
    ("patch", "workerpools.shoal.dev/status"),
    ("update", "workerpools.shoal.dev/finalizers"),
    ("get", "deployments.apps"),
    ("list", "deployments.apps"),
    ("watch", "deployments.apps"),
    ("create", "deployments.apps"),
    ("update", "deployments.apps"),
    ("patch", "deployments.apps/scale"),
    ("get", "secrets"),
    ("list", "pods"),
    ("watch", "pods"),
    ("patch", "pods"),
    ("create", "events"),
]
"""Every call the operator makes (kube.py, handlers.py, watch.py, and kopf's own)."""

NOT_NEEDED = [
    ("list", "secrets"),
    ("watch", "secrets"),
    ("create", "secrets"),
    ("update", "secrets"),
    ("delete", "deployments.apps"),
    ("patch", "deployments.apps"),
    ("delete", "pods"),
    ("create", "pods"),
    ("get", "pods"),
    ("create", "pods/exec"),
    ("update", "pods/status"),
    ("create", "workerpools.shoal.dev"),
    ("delete", "workerpools.shoal.dev"),
    ("update", "workerpools.shoal.dev"),
    ("delete", "queues.shoal.dev"),
    ("get", "configmaps"),
    ("create", "serviceaccounts/token"),
    ("create", "rolebindings.rbac.authorization.k8s.io"),
    ("delete", "events"),
]
"""Things an operator like this might be granted out of habit, and must not be."""

NOT_NEEDED_CLUSTER = [
    ("get", "nodes"),
    ("list", "nodes"),
    ("list", "namespaces"),  # cluster-wide, kopf does not follow namespaces
    ("create", "customresourcedefinitions.apiextensions.k8s.io"),
    ("update", "customresourcedefinitions.apiextensions.k8s.io"),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io"),
    ("impersonate", "users"),
]


def test_the_service_account_may_do_what_the_operator_needs_and_nothing_else(
    installed: Installed, kube_namespace: str
) -> None:
    refused = [
        f"{verb} {what}" for verb, what in NEEDED if not installed.can(verb, what, kube_namespace)
    ]
    assert not refused, f"needed but refused: {refused}"
    granted = [
        f"{verb} {what}" for verb, what in NOT_NEEDED if installed.can(verb, what, kube_namespace)
    ]
    granted += [f"{verb} {what}" for verb, what in NOT_NEEDED_CLUSTER if installed.can(verb, what)]
    assert not granted, f"granted but not needed: {granted}"
    assert installed.can("list", "customresourcedefinitions.apiextensions.k8s.io")
    assert installed.can("watch", "customresourcedefinitions.apiextensions.k8s.io")


def test_the_service_account_may_campaign_for_its_own_lease_only(installed: Installed) -> None:
    def can(verb: str, what: str, namespace: str = installed.namespace) -> bool:
        result = installed.cluster.kubectl(
            "auth", "can-i", verb, what, "--as", installed.user, "-n", namespace, check=False
        )
        return result.stdout.strip() == "yes"

    lease = f"leases.coordination.k8s.io/{installed.release}-operator"
    assert can("create", "leases.coordination.k8s.io")
    assert can("get", lease) and can("update", lease)
    other = "leases.coordination.k8s.io/kube-scheduler"
    refused = [("get", other), ("update", other), ("delete", lease), ("patch", lease)]
    refused += [("list", "leases.coordination.k8s.io"), ("watch", "leases.coordination.k8s.io")]
    granted = [f"{verb} {what}" for verb, what in refused if can(verb, what)]
    granted += ["create leases in kube-system"] * can("create", "leases", "kube-system")
    assert not granted, f"granted but not needed: {granted}"


def test_the_chart_operator_leads_through_its_lease(
    chart_operator: Operator, installed: Installed
) -> None:
    """Only the chart's rights: it created the Lease, holds it and renews it."""

    def holder() -> tuple[str, str] | None:
        found = installed.cluster.kubectl(
            "get",
            "lease",
            f"{installed.release}-operator",
            "-n",
            installed.namespace,
            "-o",
            "json",
            check=False,
        )
        spec = json.loads(found.stdout).get("spec") or {} if found.returncode == 0 else {}
        return (spec["holderIdentity"], spec["renewTime"]) if spec.get("holderIdentity") else None

    first = eventually(holder, 30, "the chart operator to hold its Lease")
    renewed = eventually(lambda: (h := holder()) and h[1] != first[1] and h, 15, "a renewal")
    assert renewed[0] == first[0]
    assert "shoal_operator_leader 1.0" in chart_operator.metrics()


def test_admission_policies_narrow_the_pod_and_deployment_writes(
    installed: Installed, kube_namespace: str
) -> None:
    """RBAC grants ``patch pods`` and ``update deployments``; the policies narrow them to the
    pod deletion cost annotation and to WorkerPool Deployments."""
    cluster = installed.cluster
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "bystander", "labels": {"team": "a"}},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "bystander", "labels": {"team": "a"}},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "bystander"}},
            "template": {"metadata": {"labels": {"app": "bystander"}}, "spec": pod["spec"]},
        },
    }
    apply(cluster, kube_namespace, pod, deployment)
    core = "CoreV1Api", "patch_namespaced_pod", "bystander", kube_namespace
    merge = {"_content_type": "application/merge-patch+json"}

    def label_change() -> str | None:
        answer = installed.call(*core, {"metadata": {"labels": {"team": "b"}}}, **merge)
        return None if answer == "allowed" else answer

    # The policies are enforced once the API server has loaded them: wait for a first refusal.
    refusal = eventually(label_change, 30, "the pod policy to refuse a label change")
    assert "may change only a pod's controller.kubernetes.io/pod-deletion-cost" in refusal
    cost = {"metadata": {"annotations": {DELETION_COST: "3"}}}
    assert installed.call(*core, cost, **merge) == "allowed"
    other = {"metadata": {"annotations": {"example.com/other": "x"}}}
    assert "pod-deletion-cost" in installed.call(*core, other, **merge)
    spec = {"spec": {"activeDeadlineSeconds": 5}}
    assert "pod-deletion-cost" in installed.call(*core, spec, **merge)

    current = cluster.kubectl_json("get", "deployment", "bystander", "-n", kube_namespace)
    current["spec"]["replicas"] = 3
    apps = "AppsV1Api", "replace_namespaced_deployment", "bystander", kube_namespace
    refused = installed.call(*apps, current)
    assert "may create or change only WorkerPool Deployments" in refused
    create = "AppsV1Api", "create_namespaced_deployment", kube_namespace
    stranger = {**deployment, "metadata": {"name": "stranger"}}
    assert "only WorkerPool Deployments" in installed.call(*create, stranger)
    labels = {"app.kubernetes.io/managed-by": "shoal-operator"}
    ours = {**deployment, "metadata": {"name": "ours", "labels": labels}}
    assert installed.call(*create, ours, dry_run="All") == "allowed"


def test_the_operator_with_only_the_charts_permissions_scales_a_pool(
    chart_operator: Operator, kube_namespace: str, postgres_url: str
) -> None:
    migrate(postgres_url)
    cluster = chart_operator.cluster
    autoscaling = {
        "minReplicas": 1,
        "maxReplicas": 5,
        "scaleDownStabilizationSeconds": 2,
        "idleCooldownSeconds": 3,
    }
    apply(
        cluster,
        kube_namespace,
        *backend_objects("charted", postgres_url, pool={"autoscaling": autoscaling}),
    )
    eventually(lambda: replicas(cluster, kube_namespace, "charted") == 1, 30, "the Deployment")
    push(postgres_url, "charted", 7)
    eventually(lambda: replicas(cluster, kube_namespace, "charted") == 4, 15, "4 replicas for 7")
    finish_all(postgres_url, "charted")
    eventually(lambda: replicas(cluster, kube_namespace, "charted") == 1, 20, "back to 1")

    def annotated() -> bool:
        pods = cluster.kubectl_json(
            "get", "pods", "-n", kube_namespace, "-l", "shoal.dev/pool=charted"
        )
        costs = [p["metadata"].get("annotations", {}).get(DELETION_COST) for p in pods["items"]]
        return bool(costs) and all(cost == "0" for cost in costs)

    eventually(annotated, 20, "the pod deletion cost on the remaining pod")
    pool = cluster.kubectl_json("get", "workerpool", "charted", "-n", kube_namespace)
    ready = [c for c in pool["status"]["conditions"] if c["type"] == "Ready"]
    assert ready and ready[0]["status"] == "True"
    reasons = {
        e["reason"] for e in cluster.kubectl_json("get", "events", "-n", kube_namespace)["items"]
    }
    assert {"ScaledUp", "ScaledDown"} <= reasons
    # This process, not some other operator, did the scaling: its own metrics say so.
    scaled = {
        sample.labels["direction"]: sample.value
        for family in text_string_to_metric_families(chart_operator.metrics())
        for sample in family.samples
        if sample.name == "shoal_operator_scale_events_total"
        and sample.labels["namespace"] == kube_namespace
    }
    assert scaled.get("up", 0) >= 1 and scaled.get("down", 0) >= 1, scaled
    assert_no_permission_errors(chart_operator)


def test_the_examples_work_with_the_chart(chart_operator: Operator, kube_namespace: str) -> None:
    """``kubectl apply -f examples/``: the Redis, the Secret, the Queue and the WorkerPool."""
    cluster = chart_operator.cluster
    cluster.kubectl("apply", "-n", kube_namespace, "-f", str(ROOT / "examples"))
    deployment = eventually(
        lambda: (
            cluster.kubectl(
                "get",
                "deployment",
                "thumbnails-workers",
                "-n",
                kube_namespace,
                "-o",
                "json",
                check=False,
            ).stdout
            or None
        ),
        30,
        "the example pool's Deployment",
    )
    pod = json.loads(deployment)["spec"]["template"]["spec"]
    pool = yaml.safe_load((ROOT / "examples" / "03-workerpool.yaml").read_text())["spec"]
    assert pod["terminationGracePeriodSeconds"] == pool["shutdownTimeoutSeconds"] + 15
    [container] = pod["containers"]
    assert container["image"] == "shoal-example:dev"
    assert container["command"] == ["shoal"]
    args = container["args"]
    assert args[:2] == ["worker", "tasks:app"]
    assert args[args.index("--queues") + 1] == "thumbnails"
    assert args[args.index("--concurrency") + 1] == "10"
    assert args[args.index("--shutdown-timeout") + 1] == "30"
    url = next(e for e in container["env"] if e["name"] == "SHOAL_BACKEND_URL")
    assert url["valueFrom"]["secretKeyRef"] == {"name": "shoal-backend", "key": "url"}
    assert container["resources"]["limits"] == {"memory": "256Mi"}
    redis = cluster.kubectl_json("get", "deployment", "shoal-redis", "-n", kube_namespace)
    assert redis["spec"]["template"]["spec"]["containers"][0]["image"].startswith("redis:")
    assert_no_permission_errors(chart_operator)


def test_a_namespaced_install_serves_its_namespaces_only(
    crds: KubernetesCluster,
    tmp_path: Path,
    namespaces: dict[str, str],
    kube_namespace: str,
    postgres_url: str,
) -> None:
    """watchNamespaces: Roles in the listed namespaces, nothing in any other one."""
    release = Installed(crds, tmp_path, values_file(tmp_path, "namespaced", namespaces))
    listed = sorted(namespaces.values())
    try:
        assert release.can("list", "namespaces") and release.can("watch", "namespaces")
        for namespace in listed:
            refused = [f"{v} {w}" for v, w in NEEDED if not release.can(v, w, namespace)]
            assert not refused, f"needed in {namespace} but refused: {refused}"
        granted = [f"{v} {w}" for v, w in NEEDED if release.can(v, w, kube_namespace)]
        assert not granted, f"granted outside the listed namespaces: {granted}"
        operator = Operator(
            crds,
            tmp_path,
            kubeconfig=release.kubeconfig,
            args=[arg for namespace in listed for arg in ("--namespace", namespace)],
        )
        try:
            migrate(postgres_url)
            apply(crds, listed[0], *backend_objects("scoped", postgres_url))
            eventually(
                lambda: replicas(crds, listed[0], "scoped") == 0 or None, 30, "the Deployment"
            )
            pool = crds.kubectl_json("get", "workerpool", "scoped", "-n", listed[0])
            ready = [c for c in pool["status"]["conditions"] if c["type"] == "Ready"]
            assert ready and ready[0]["status"] == "True"
            assert_no_permission_errors(operator)
        finally:
            operator.stop()
    finally:
        release.uninstall()
