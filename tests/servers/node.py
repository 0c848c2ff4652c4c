"""A real Kubernetes node on this machine: containerd + runc, the kubelet, kube-proxy, and
kube-scheduler, joined to the control plane of :mod:`tests.servers.kubernetes`.

Everything runs from a temporary directory: containerd's root, state and socket, the CNI
config and its address bookkeeping, the kubelet's root and certificates. What is host-wide
cannot be: one node per machine (the CNI bridge ``cni0`` and its subnet, iptables, the node
name, which is the hostname, and the ``kubepods`` cgroups). The settings that fail hard if
missed on these machines (root without CAP_SYS_RESOURCE, cgroup v1, dockerd's FORWARD DROP,
no registry) are each commented where they are set; ``/work/shared/notes/real-node.md`` has
how they were found.

Images reach containerd by ``ctr images import`` of archives (``docker save`` output, and a
one-layer OCI archive for the pause image built from ``scripts/k8s-binaries.sh --node``'s
``pause``). Nothing can be pulled, so pods find them present (``imagePullPolicy: Never``, or
``IfNotPresent``, the default for a tag other than ``latest``) and the kubelet never
collects them.

:meth:`KubernetesNode.stop` tears down in the order that leaves nothing behind: the kubelet,
every pod sandbox through the CRI, kube-proxy and its iptables rules, containerd, then the
bridge, the firewall plugin's chain, leftover mounts and the kubepods cgroups.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from tests.servers.host import remove_node_leftovers, stop_process_group, unmount_below
from tests.servers.oci import pause_archive
from tests.servers.ports import free_port

POD_SUBNET = "10.244.0.0/24"
GATEWAY = "10.244.0.1"
"""The host's address on the pod bridge: reachable from pods, from nowhere off this machine."""
BRIDGE = "cni0"
CNI_BIN = "/usr/lib/cni"  # Debian's containernetworking-plugins (not /opt/cni/bin)
PAUSE_IMAGE = "registry.k8s.io/pause:3.10.2"
NODE_BINARIES = ("kubelet", "kube-scheduler", "kube-proxy", "crictl", "pause")


def node_ip() -> str:
    """The machine's first global IPv4 address: the kubelet refuses loopback as a node IP."""
    found = subprocess.run(
        ["ip", "-4", "-o", "addr", "show", "scope", "global"],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    addresses = [found[i + 1].split("/")[0] for i, word in enumerate(found) if word == "inet"]
    if not addresses:
        raise RuntimeError("no global IPv4 address for the node (loopback is refused)")
    return addresses[0]


def node_name() -> str:
    return socket.gethostname().lower()


def missing_for_a_node(bin_dir: Path) -> list[str]:
    """What this machine lacks to run a node: root, the packages, the node's binaries."""
    missing = [] if os.geteuid() == 0 else ["root"]
    for command in ("containerd", "runc", "ctr", "iptables", "ip"):
        if not any((Path(d) / command).exists() for d in os.get_exec_path()):
            missing.append(command)
    missing += [n for n in NODE_BINARIES if not os.access(bin_dir / n, os.X_OK)]
    if not Path(CNI_BIN, "bridge").exists():
        missing.append(f"{CNI_BIN}/bridge")
    return missing


class KubernetesNode:
    """The node's processes, started by :meth:`start` in ``directory`` against a cluster.

    ``kubeconfig`` is the node's own (``system:node:<hostname>``), ``admin_kubeconfig`` what
    kube-scheduler and kube-proxy use, ``ca`` the cluster CA the kubelet trusts clients of.
    """

    def __init__(
        self,
        directory: Path,
        bin_dir: Path,
        *,
        kubeconfig: Path,
        admin_kubeconfig: Path,
        ca: Path,
    ) -> None:
        self.directory = directory
        self.bin_dir = bin_dir
        self.kubeconfig = kubeconfig
        self.admin_kubeconfig = admin_kubeconfig
        self.ca = ca
        self.name = node_name()
        self.ip = node_ip()
        self.containerd_socket = directory / "containerd" / "containerd.sock"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- bring-up ---------------------------------------------------------------------------

    def start_runtime(self, *, timeout: float = 60.0) -> None:
        """containerd, with the CNI config in place (the bridge made before, by
        :meth:`make_bridge`)."""
        config = self._containerd_config()
        self._spawn("containerd", "containerd", f"--config={config}")
        self._until(lambda: self.ctr("version", check=False).returncode == 0, timeout, "containerd")
        archive = pause_archive(self.bin_dir / "pause", self.directory / "pause.tar", PAUSE_IMAGE)
        self.import_image(archive)

    def import_image(self, archive: Path) -> None:
        """An image archive into containerd's ``k8s.io`` namespace, where the kubelet looks."""
        self.ctr("images", "import", str(archive), timeout=600)

    def start_node(self, *, timeout: float = 90.0) -> None:
        """kube-scheduler, kube-proxy and the kubelet; return once the node is Ready."""
        scheduler_port, proxy_health, proxy_metrics = free_port(), free_port(), free_port()
        admin = str(self.admin_kubeconfig)
        self._spawn(
            "kube-scheduler", str(self.bin_dir / "kube-scheduler"),
            f"--kubeconfig={admin}", f"--authentication-kubeconfig={admin}",
            f"--authorization-kubeconfig={admin}", "--bind-address=127.0.0.1",
            f"--secure-port={scheduler_port}", "--leader-elect=false", "--profiling=false",
        )  # fmt: skip
        self._spawn(
            "kube-proxy", str(self.bin_dir / "kube-proxy"),
            f"--kubeconfig={admin}", "--proxy-mode=iptables", f"--hostname-override={self.name}",
            f"--cluster-cidr={POD_SUBNET}",
            # 0: leave nf_conntrack_max alone (setting it needs a writable /proc/sys/net).
            "--conntrack-max-per-core=0",
            f"--healthz-bind-address=127.0.0.1:{proxy_health}",
            f"--metrics-bind-address=127.0.0.1:{proxy_metrics}",
        )  # fmt: skip
        root = self.directory / "kubelet"
        root.mkdir(exist_ok=True)
        self._spawn(
            "kubelet", str(self.bin_dir / "kubelet"),
            f"--config={self._kubelet_config()}", f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={root}", f"--cert-dir={root / 'pki'}", f"--node-ip={self.ip}",
            f"--hostname-override={self.name}",
        )  # fmt: skip

    # -- teardown ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Everything :meth:`start_runtime` and :meth:`start_node` made, in the safe order."""
        self._terminate("kubelet")
        if "containerd" in self.processes:
            sandboxes = self.crictl("pods", "--quiet", check=False).stdout.split()
            for sandbox in sandboxes:  # stopp runs the CNI DEL: the pod's address and rules go
                self.crictl("stopp", sandbox, check=False)
                self.crictl("rmp", "--force", sandbox, check=False)
        self._terminate("kube-proxy")
        self._terminate("kube-scheduler")
        if (self.bin_dir / "kube-proxy").exists():
            self._quiet([str(self.bin_dir / "kube-proxy"), "--cleanup", "--proxy-mode=iptables"])
        self._terminate("containerd")
        self._quiet(["ip", "link", "delete", BRIDGE])
        unmount_below(self.directory)
        remove_node_leftovers(self.directory)

    # -- commands ---------------------------------------------------------------------------

    def ctr(
        self, *args: str, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return self._run(
            ["ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args],
            check=check, timeout=timeout,
        )  # fmt: skip

    def crictl(
        self, *args: str, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        endpoint = f"unix://{self.containerd_socket}"
        return self._run(
            [str(self.bin_dir / "crictl"), f"--runtime-endpoint={endpoint}",
             f"--image-endpoint={endpoint}", "--timeout=20s", *args],
            check=check, timeout=timeout,
        )  # fmt: skip

    def log_tail(self, name: str, lines: int = 20) -> str:
        log = self.directory / f"{name}.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    # -- the pieces -------------------------------------------------------------------------

    def make_bridge(self) -> None:
        """``cni0`` with the gateway address, made before the apiserver and any pod, so that
        the apiserver and servers for the pods can listen on :data:`GATEWAY` from the start
        (the bridge plugin adopts it)."""
        self._quiet(["ip", "link", "delete", BRIDGE])  # a previous session's, killed
        subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
        subprocess.run(["ip", "addr", "add", f"{GATEWAY}/24", "dev", BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)

    def _containerd_config(self) -> Path:
        base = self.directory / "containerd"
        conf_dir = self.directory / "cni" / "net.d"
        conf_dir.mkdir(parents=True, exist_ok=True)
        network = {
            "cniVersion": "0.4.0",
            "name": "shoal-test",
            "plugins": [
                {
                    "type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": True,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": POD_SUBNET, "gateway": GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": str(self.directory / "cni" / "ipam"),
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
                # dockerd (if it ran on this machine) set FORWARD's policy to DROP and the
                # bridge plugin adds no ACCEPT rules: without these, pods have no egress.
                {"type": "firewall"},
            ],
        }  # fmt: skip
        (conf_dir / "10-shoal-test.conflist").write_text(json.dumps(network, indent=2))
        cri = 'plugins."io.containerd.grpc.v1.cri"'
        config = f"""version = 2
root = "{base / "root"}"
state = "{base / "state"}"
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{base / "containerd.sock.ttrpc"}"
[{cri}]
  sandbox_image = "{PAUSE_IMAGE}"
  # Root here lacks CAP_SYS_RESOURCE: runc cannot raise a sandbox's oom_score_adj, and every
  # sandbox fails with "can't get final child's PID from pipe: EOF" without this.
  restrict_oom_score_adj = true
  enable_unprivileged_ports = false
[{cri}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"
[{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
[{cri}.containerd.runtimes.runc.options]
  # cgroup v1 and no systemd here: the kubelet's cgroupDriver is cgroupfs, and so is runc's.
  SystemdCgroup = false
[{cri}.cni]
  bin_dir = "{CNI_BIN}"
  conf_dir = "{conf_dir}"
"""
        path = base / "config.toml"
        base.mkdir(parents=True, exist_ok=True)
        path.write_text(config)
        return path

    def _kubelet_config(self) -> Path:
        config = {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
            "address": self.ip,
            "port": free_port(),
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": free_port(),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(self.ca)},
            },
            "authorization": {"mode": "AlwaysAllow"},  # clients are the cluster CA's already
            "cgroupDriver": "cgroupfs",
            "failCgroupV1": False,  # kubelet 1.35+ refuses cgroup v1 unless told otherwise
            "failSwapOn": False,
            # The images were imported, not pulled: a collected one could never come back.
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "1%",
                "imagefs.available": "1%",
            },
            "resolvConf": "/etc/resolv.conf",
            "podLogsDir": str(self.directory / "pod-logs"),
            "registerNode": True,
            "serializeImagePulls": False,
            "nodeStatusReportFrequency": "10s",
        }
        path = self.directory / "kubelet-config.json"
        path.write_text(json.dumps(config, indent=2))
        return path

    def _spawn(self, name: str, *argv: str) -> None:
        with open(self.directory / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def _terminate(self, name: str, timeout: float = 20.0) -> None:
        process = self.processes.pop(name, None)
        if process is not None:
            stop_process_group(process, timeout)

    def _until(self, check: Callable[[], bool], timeout: float, name: str) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            process = self.processes.get(name)
            if (process is not None and process.poll() is not None) or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start:\n{self.log_tail(name)}")
            time.sleep(0.2)

    def _run(
        self, argv: list[str], *, check: bool, timeout: float
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}:\n{result.stderr}")
        return result

    def _quiet(self, argv: list[str]) -> None:
        """A clean-up step that may find nothing to clean."""
        subprocess.run(argv, capture_output=True, timeout=60, check=False)
