"""A real Kubernetes API for the tests: etcd, kube-apiserver and kube-controller-manager.

:class:`KubernetesCluster` starts the three on free loopback ports in a temporary directory,
with certificates made here (a CA, the apiserver's serving certificate, an admin client
certificate in ``system:masters``, a service-account signing key), the RBAC authorizer on (so
tests can check least privilege with ``--as``), and writes a kubeconfig. There is no scheduler
and no kubelet: pods are created but never run. kube-controller-manager is there for garbage
collection of owned objects and for Deployment -> ReplicaSet -> Pod.

With ``real_node=True`` a real node joins it (:mod:`tests.servers.node`: containerd and runc,
the kubelet, kube-proxy, kube-scheduler, a bridge network), and pods run for real from images
imported into containerd. The apiserver then listens on the pod bridge's gateway instead of
loopback (still nothing off this machine reaches it), behind the ``kubernetes`` Service, so
that pods (the operator's, installed by the chart) reach it as in any cluster. The
``real_cluster`` fixture is that cluster, with shoal's images.

The binaries come from ``KUBEBUILDER_ASSETS`` or ``scripts/k8s-binaries.sh``'s cache
(:mod:`tests.servers.kubernetes_binaries`).

With ``SHOAL_TEST_KUBECONFIG`` set, nothing is started: the tests use that cluster (kind, for
people with a container engine), with kubectl and helm from the same bin dir.

Fixtures: ``kube_cluster`` (one per session; with ``SHOAL_TEST_REAL_NODE=1`` the real-node
cluster), ``real_cluster`` (one per session) and ``kube_namespace`` (a fresh namespace per
test, deleted afterwards).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pytest

from tests.servers.docker import DockerDaemon, Images
from tests.servers.host import stop_process_group
from tests.servers.kubernetes_binaries import REAL_NODE_DEFAULT, bin_dir
from tests.servers.kubernetes_binaries import find_bin_dir as find_bin_dir  # for bench/
from tests.servers.kubernetes_pki import make_pki, write_kubeconfig
from tests.servers.node import GATEWAY, KubernetesNode, missing_for_a_node
from tests.servers.ports import free_port

SERVICE_CIDR = "10.0.0.0/24"
"""Addresses handed to Services; nothing routes to them here (no kube-proxy, no kubelet)."""

T = TypeVar("T")


class CommandFailed(RuntimeError):
    """A kubectl or helm command exited non-zero; the message carries its stderr."""

    def __init__(self, argv: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
        self.result = result


def eventually(check: Callable[[], T | None], *, timeout: float, what: str) -> T:
    """Call ``check`` until it returns something other than None or False, or time out."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None and value is not False:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout:.0f} s")
        time.sleep(0.25)


class KubernetesCluster:
    """etcd + kube-apiserver + kube-controller-manager in ``directory``, or an existing cluster.

    ``kubeconfig`` names a cluster to use instead of starting one; ``start`` then only checks
    that it answers, and ``stop`` leaves it alone.
    """

    def __init__(
        self,
        directory: Path,
        bin_dir: Path,
        *,
        kubeconfig: Path | None = None,
        real_node: bool = False,
    ) -> None:
        self.directory = directory
        self.bin_dir = bin_dir
        self.external = kubeconfig is not None
        self.kubeconfig = kubeconfig or directory / "admin.kubeconfig"
        self.api_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.node: KubernetesNode | None = None
        if real_node and not self.external:
            self.node = KubernetesNode(
                directory / "node",
                bin_dir,
                kubeconfig=directory / "node.kubeconfig",
                admin_kubeconfig=self.kubeconfig,
                ca=directory / "pki" / "ca.crt",
            )

    @property
    def address(self) -> str:
        """Where the apiserver listens: loopback, or with a real node the pod bridge's
        gateway, which this machine and its pods reach and nothing off it does (pods find
        the apiserver behind the ``kubernetes`` Service, as in any cluster)."""
        return GATEWAY if self.node is not None else "127.0.0.1"

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.api_port}"

    def start(self, *, timeout: float = 90.0) -> None:
        """Start the control plane and return once the apiserver's /readyz says ok."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.external:
            self.kubectl("get", "--raw", "/readyz", timeout=timeout)
            return
        deadline = time.monotonic() + timeout
        try:
            pki = self._make_certificates()
            etcd_port, peer_port, manager_port = free_port(), free_port(), free_port()
            etcd = f"http://127.0.0.1:{etcd_port}"
            peer = f"http://127.0.0.1:{peer_port}"
            self._spawn(
                "etcd",
                "--name=shoal-test", f"--data-dir={self.directory / 'etcd'}",
                f"--listen-client-urls={etcd}", f"--advertise-client-urls={etcd}",
                f"--listen-peer-urls={peer}", f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=shoal-test={peer}", "--unsafe-no-fsync=true",
                "--log-level=warn",
            )  # fmt: skip
            self._wait("etcd", f"{etcd}/health", deadline, lambda body: '"health":"true"' in body)
            if self.node is not None:
                self.node.make_bridge()  # the apiserver listens on its gateway
            self._spawn(
                "kube-apiserver",
                f"--etcd-servers={etcd}", f"--bind-address={self.address}",
                f"--advertise-address={self.address}", f"--secure-port={self.api_port}",
                *self._endpoint_flags(),
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}", *self._node_apiserver_flags(pki),
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                f"--service-cluster-ip-range={SERVICE_CIDR}", "--allow-privileged=true",
                "--profiling=false",
            )  # fmt: skip
            self._wait("kube-apiserver", f"{self.server}/readyz", deadline, lambda b: b == "ok")
            self._spawn(
                "kube-controller-manager",
                f"--kubeconfig={self.kubeconfig}",
                f"--authentication-kubeconfig={self.kubeconfig}",
                f"--authorization-kubeconfig={self.kubeconfig}",
                "--bind-address=127.0.0.1", f"--secure-port={manager_port}",
                f"--cert-dir={self.directory / 'controller-manager-certs'}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
                "--leader-elect=false", "--profiling=false",
                # A real node's pods need their namespace's `default` ServiceAccount, made by
                # the controllers that this flag gives credentials of their own.
                *(["--use-service-account-credentials"] if self.node else []),
            )  # fmt: skip
            self._wait(
                "kube-controller-manager",
                f"https://127.0.0.1:{manager_port}/healthz",
                deadline,
                lambda body: body == "ok",
            )
            if self.node is not None:
                self.node.directory.mkdir(exist_ok=True)
                self.node.start_runtime()
        except BaseException:
            self.stop()
            raise

    def start_node(self, *, timeout: float = 120.0) -> None:
        """The real node's kubelet, kube-proxy and kube-scheduler (after :meth:`start` and
        the images' import); returns once the Node is Ready and can admit pods."""
        node = self.node
        assert node is not None, "a cluster made with real_node=True"
        node.start_node()
        deadline = time.monotonic() + timeout
        condition = "jsonpath={.status.conditions[?(@.type=='Ready')].status}"
        while self.kubectl("get", "node", node.name, "-o", condition, check=False).stdout != "True":
            kubelet = node.processes.get("kubelet")
            if time.monotonic() > deadline or (kubelet is not None and kubelet.poll() is not None):
                raise RuntimeError(f"the node is not Ready:\n{node.log_tail('kubelet')}")
            time.sleep(0.5)
        # Pods are refused until the controllers made the namespace's default ServiceAccount.
        eventually(
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout=max(1.0, deadline - time.monotonic()),
            what="default ServiceAccount",
        )

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop every process this object started (its whole process group), newest first;
        a real node first, in the order its :meth:`~KubernetesNode.stop` keeps."""
        if self.node is not None:
            self.node.stop()
        for name in reversed(list(self.processes)):
            stop_process_group(self.processes.pop(name), timeout)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises :class:`CommandFailed` if ``check``."""
        argv = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.directory / 'kubectl-cache'}",
            *args,
        ]
        return self._run(argv, input=input, check=check, timeout=timeout)

    def kubectl_json(self, *args: str, timeout: float = 60.0) -> Any:
        """``kubectl ... -o json``, parsed."""
        return json.loads(self.kubectl(*args, "-o", "json", timeout=timeout).stdout)

    def helm(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run helm against this cluster, its cache and config kept in the cluster's directory."""
        argv = [str(self.bin_dir / "helm"), f"--kubeconfig={self.kubeconfig}", *args]
        return self._run(argv, input=input, check=check, timeout=timeout)

    def log_tail(self, name: str, lines: int = 15) -> str:
        log = self.directory / f"{name}.log"
        return (
            "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""
        )

    def __enter__(self) -> KubernetesCluster:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(
        self, argv: list[str], *, input: str | None, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        home = self.directory / "helm"
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
        }
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
        if check and result.returncode != 0:
            raise CommandFailed(argv, result)
        return result

    def _spawn(self, name: str, *args: str) -> None:
        with open(self.directory / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                [str(self.bin_dir / name), *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait(self, name: str, url: str, deadline: float, ready: Callable[[str], bool]) -> None:
        """Poll ``url`` (with the admin certificate) until ``ready(body)`` or the deadline."""
        pki = self.directory / "pki"
        context = ssl.create_default_context(cafile=pki / "ca.crt")
        context.load_cert_chain(pki / "admin.crt", pki / "admin.key")
        if name == "kube-controller-manager":  # it serves a self-signed certificate of its own
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        process = self.processes[name]
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as response:
                    if ready(response.read().decode()):
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        state = "exited" if process.poll() is not None else "is not ready"
        raise RuntimeError(f"{name} {state} ({url}):\n{self.log_tail(name)}")

    def _endpoint_flags(self) -> list[str]:
        if self.node is not None:
            return []  # the kubernetes Service points at the gateway: pods reach the API
        # A loopback advertise address is refused by the reconciler of the kubernetes
        # Service's endpoints (since v1.37); without pods nothing routes to that Service.
        return ["--endpoint-reconciler-type=none"]

    def _node_apiserver_flags(self, pki: Path) -> list[str]:
        if self.node is None:
            return ["--authorization-mode=RBAC"]
        # The kubelet's credentials are a node's (Node authorizer, NodeRestriction), and the
        # apiserver reaches the kubelet (logs, exec) with the admin's client certificate.
        return [
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={pki / 'admin.crt'}",
            f"--kubelet-client-key={pki / 'admin.key'}",
            # The node's name (the hostname) may resolve to loopback; the kubelet listens on
            # the node's address.
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _make_certificates(self) -> Path:
        """A CA, the apiserver's, the admin's (and a real node's) certificates, a
        service-account key pair, and the kubeconfigs that use them."""
        pki = self.directory / "pki"
        node = self.node.name if self.node else None
        make_pki(pki, service_cidr=SERVICE_CIDR, node_name=node, address=self.address)
        write_kubeconfig(self.kubeconfig, pki, "admin", self.server)
        if self.node is not None:
            write_kubeconfig(self.node.kubeconfig, pki, "node", self.server)
        return pki


@pytest.fixture(scope="session")
def kube_cluster(request: pytest.FixtureRequest) -> Iterator[KubernetesCluster]:
    """The session's cluster: started here (a control plane whose pods never run; the
    real-node cluster with ``SHOAL_TEST_REAL_NODE=1``), or ``SHOAL_TEST_KUBECONFIG``'s."""
    if REAL_NODE_DEFAULT:
        yield request.getfixturevalue("real_cluster")
        return
    existing = os.environ.get("SHOAL_TEST_KUBECONFIG")
    with tempfile.TemporaryDirectory(prefix="shoal-k8s-") as directory:
        cluster = KubernetesCluster(
            Path(directory), bin_dir(node=False), kubeconfig=Path(existing) if existing else None
        )
        with cluster:
            yield cluster


@pytest.fixture(scope="session")
def real_cluster(shoal_images: Images, docker_daemon: DockerDaemon) -> Iterator[KubernetesCluster]:
    """A single-node cluster whose pods run for real: the control plane, and a node
    (:mod:`tests.servers.node`) with shoal's images imported into its containerd, where pods
    find them present (nothing can be pulled here). Brought up once per session, torn down
    in the order that leaves nothing behind. With ``SHOAL_TEST_KUBECONFIG`` set, that cluster is
    used instead, and its nodes must have the images already (``kind load docker-image``).
    """
    existing = os.environ.get("SHOAL_TEST_KUBECONFIG")
    binaries = bin_dir(node=True)
    if not existing and (missing := missing_for_a_node(binaries)):
        pytest.skip(f"this machine cannot run a real node: no {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="shoal-node-") as directory:
        cluster = KubernetesCluster(
            Path(directory),
            binaries,
            kubeconfig=Path(existing) if existing else None,
            real_node=True,
        )
        with cluster:
            if cluster.node is not None:
                archive = Path(directory) / "images.tar"
                docker_daemon.docker(
                    "save", "--output", str(archive), *shoal_images.node_images(), timeout=600
                )
                cluster.node.import_image(archive)
                archive.unlink()
                cluster.start_node()
            yield cluster


@pytest.fixture
def kube_namespace(kube_cluster: KubernetesCluster) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards (without waiting for it to go)."""
    name = f"shoal-test-{uuid.uuid4().hex[:10]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
