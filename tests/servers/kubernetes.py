"""A real Kubernetes API for the tests: etcd, kube-apiserver and kube-controller-manager.

:class:`KubernetesCluster` starts the three on free loopback ports in a temporary directory,
with certificates made here (a CA, the apiserver's serving certificate, an admin client
certificate in ``system:masters``, a service-account signing key), the RBAC authorizer on (so
tests can check least privilege with ``--as``), and writes a kubeconfig. There is no scheduler
and no kubelet: pods are created but never run. kube-controller-manager is there for garbage
collection of owned objects and for Deployment -> ReplicaSet -> Pod.

Where the binaries come from, first match wins:

- ``KUBEBUILDER_ASSETS`` (envtest's convention), when it holds etcd, kube-apiserver,
  kube-controller-manager, kubectl and helm;
- ``scripts/k8s-binaries.sh``, which builds them once from the Go module proxy into a cache
  outside git and prints the bin dir (fast when cached; the first build takes 10-30 minutes,
  done before the first test starts so the per-test timeout does not cut it short).

With ``SHOAL_TEST_KUBECONFIG`` set, nothing is started: the tests use that cluster (kind, for
people with a container engine), with kubectl and helm from the same bin dir.

Fixtures: ``kube_cluster`` (one per session) and ``kube_namespace`` (a fresh namespace per
test, deleted afterwards).
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import ipaddress
import json
import os
import signal
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
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.servers.ports import free_port

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "k8s-binaries.sh"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kubectl", "helm")
SERVICE_CIDR = "10.0.0.0/24"
"""Addresses handed to Services; nothing routes to them here (no kube-proxy, no kubelet)."""

T = TypeVar("T")


class CommandFailed(RuntimeError):
    """A kubectl or helm command exited non-zero; the message carries its stderr."""

    def __init__(self, argv: list[str], result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
        self.result = result


def holds_binaries(directory: Path) -> bool:
    return all(os.access(directory / name, os.X_OK) for name in BINARIES)


def find_bin_dir() -> Path:
    """The directory holding the binaries: ``KUBEBUILDER_ASSETS`` or the build script's cache.

    The script's progress goes to this process's stderr; its last stdout line is the bin dir.
    """
    assets = os.environ.get("KUBEBUILDER_ASSETS")
    if assets and holds_binaries(Path(assets)):
        return Path(assets)
    result = subprocess.run(
        [str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, timeout=3600, check=False
    )
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not holds_binaries(Path(lines[-1])):
        raise RuntimeError(
            f"{BUILD_SCRIPT.relative_to(REPO)} failed (exit {result.returncode}); "
            "its output is above"
        )
    return Path(lines[-1])


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

    def __init__(self, directory: Path, bin_dir: Path, *, kubeconfig: Path | None = None) -> None:
        self.directory = directory
        self.bin_dir = bin_dir
        self.external = kubeconfig is not None
        self.kubeconfig = kubeconfig or directory / "admin.kubeconfig"
        self.api_port = free_port()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

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
            self._spawn(
                "kube-apiserver",
                f"--etcd-servers={etcd}", "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1", f"--secure-port={self.api_port}",
                # A loopback advertise address is refused by the reconciler of the kubernetes
                # Service's endpoints (since v1.37); nothing here routes to that Service anyway.
                "--endpoint-reconciler-type=none",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}", "--authorization-mode=RBAC",
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
            )  # fmt: skip
            self._wait(
                "kube-controller-manager",
                f"https://127.0.0.1:{manager_port}/healthz",
                deadline,
                lambda body: body == "ok",
            )
        except BaseException:
            self.stop()
            raise

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stop every process this object started (its whole process group), newest first."""
        for name in reversed(list(self.processes)):
            process = self.processes.pop(name)
            for sig in (signal.SIGTERM, signal.SIGKILL):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, sig)
                try:
                    process.wait(timeout)
                    break
                except subprocess.TimeoutExpired:
                    continue

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

    def _make_certificates(self) -> Path:
        """A CA, the apiserver's and the admin's certificates, a service-account key pair."""
        pki = self.directory / "pki"
        pki.mkdir(exist_ok=True)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = _certificate("shoal-test-ca", ca_key, ca_key, ca=True)
        _write(pki / "ca.crt", ca, pki / "ca.key", ca_key)
        server_key = ec.generate_private_key(ec.SECP256R1())
        server_names: list[x509.GeneralName] = [
            x509.DNSName(name)
            for name in (
                "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                "kubernetes.default.svc.cluster.local",
            )
        ]  # fmt: skip
        server_names += [
            x509.IPAddress(ipaddress.IPv4Address("127.0.0.1")),
            x509.IPAddress(next(ipaddress.IPv4Network(SERVICE_CIDR).hosts())),
        ]
        server = _certificate("kube-apiserver", server_key, ca_key, issuer=ca, names=server_names)
        _write(pki / "apiserver.crt", server, pki / "apiserver.key", server_key)
        admin_key = ec.generate_private_key(ec.SECP256R1())
        admin = _certificate("shoal-admin", admin_key, ca_key, issuer=ca, group="system:masters")
        _write(pki / "admin.crt", admin, pki / "admin.key", admin_key)
        sa_key = ec.generate_private_key(ec.SECP256R1())
        _write(None, None, pki / "sa.key", sa_key)
        (pki / "sa.pub").write_bytes(
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

        def data(path: str) -> str:
            return base64.b64encode((pki / path).read_bytes()).decode()

        # kubeconfig is YAML, and JSON is YAML: no YAML library needed.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "shoal-test",
                    "cluster": {
                        "server": self.server,
                        "certificate-authority-data": data("ca.crt"),
                    },
                }
            ],
            "users": [
                {
                    "name": "shoal-admin",
                    "user": {
                        "client-certificate-data": data("admin.crt"),
                        "client-key-data": data("admin.key"),
                    },
                }
            ],
            "contexts": [
                {"name": "shoal-test", "context": {"cluster": "shoal-test", "user": "shoal-admin"}}
            ],
            "current-context": "shoal-test",
        }
        self.kubeconfig.write_text(json.dumps(config, indent=2))
        self.kubeconfig.chmod(0o600)
        return pki


def _certificate(
    common_name: str,
    key: ec.EllipticCurvePrivateKey,
    signer: ec.EllipticCurvePrivateKey,
    *,
    issuer: x509.Certificate | None = None,
    ca: bool = False,
    group: str | None = None,
    names: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """A one-day certificate: the CA itself, a server's (``names``) or a client's."""
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if group:  # Kubernetes reads a client certificate's O as its group
        attributes.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, group))
    subject = x509.Name(attributes)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        usage = x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False,
        )  # fmt: skip
        builder = builder.add_extension(usage, critical=True)
    elif names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
    else:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    return builder.sign(signer, hashes.SHA256())


def _write(
    cert_path: Path | None,
    cert: x509.Certificate | None,
    key_path: Path,
    key: ec.EllipticCurvePrivateKey,
) -> None:
    if cert_path is not None and cert is not None:
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key_path.chmod(0o600)


_built: list[Path | BaseException] = []
"""The bin dir (or the failure) found before the first test, so the build is not timed."""


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Build the binaries before any test starts, when a selected test needs the cluster.

    A first build takes minutes: done here it is outside every test's timeout, and its
    progress lines reach the terminal.
    """
    if session.config.option.collectonly or _built:
        return
    if not any("kube_cluster" in getattr(item, "fixturenames", ()) for item in session.items):
        return
    capture = session.config.pluginmanager.getplugin("capturemanager")
    quiet = capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
    with quiet:
        try:
            _built.append(find_bin_dir())
        except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
            _built.append(exc)


@pytest.fixture(scope="session")
def kube_cluster() -> Iterator[KubernetesCluster]:
    """The session's cluster: started here, or the one ``SHOAL_TEST_KUBECONFIG`` names."""
    found = _built[0] if _built else find_bin_dir()
    if isinstance(found, BaseException):
        raise RuntimeError(f"no Kubernetes binaries: {found}") from found
    existing = os.environ.get("SHOAL_TEST_KUBECONFIG")
    with tempfile.TemporaryDirectory(prefix="shoal-k8s-") as directory:
        cluster = KubernetesCluster(
            Path(directory), found, kubeconfig=Path(existing) if existing else None
        )
        with cluster:
            yield cluster


@pytest.fixture
def kube_namespace(kube_cluster: KubernetesCluster) -> Iterator[str]:
    """A namespace of this test's own, deleted afterwards (without waiting for it to go)."""
    name = f"shoal-test-{uuid.uuid4().hex[:10]}"
    kube_cluster.kubectl("create", "namespace", name)
    yield name
    kube_cluster.kubectl("delete", "namespace", name, "--wait=false", "--ignore-not-found")
