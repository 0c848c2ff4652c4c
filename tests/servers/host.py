"""What the servers that run as root leave on the host, and how to take it away again.

A real node (:mod:`tests.servers.node`) is host-wide: one per machine. So every KUBE-* and
CNI-* iptables chain and the ``kubepods`` cgroups are its own, and :func:`remove_node_leftovers`
takes them away after the node's processes have stopped.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
from pathlib import Path

HOST_DIRECTORIES = (
    "/var/log/containers",  # the kubelet's symlinks to container logs
    "/var/lib/kubelet/device-plugins",  # the kubelet's device-plugin socket directory
    "/var/lib/kubelet",
    "/var/lib/cni/results",  # libcni's result cache (emptied by each pod's CNI DEL)
    "/var/lib/cni",
    "/run/containerd/s",  # containerd's shim sockets
    "/run/containerd/runc/k8s.io",
    "/run/containerd/runc",
    "/run/containerd",
)
"""Paths the kubelet, containerd and libcni hard-code; removed after teardown when empty."""
PREFIXES = ("KUBE-", "CNI-")
"""The iptables chains of the kubelet, kube-proxy and the CNI plugins."""


def stop_process_group(process: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM to the process's group (started with ``start_new_session``), SIGKILL if it is
    still there after ``timeout`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue


def unmount_below(directory: Path) -> None:
    """Every mount under ``directory``, deepest first: what dockerd (its network namespace
    file), the kubelet (volumes) and containerd (snapshots) leave when they stop."""
    prefix = str(directory.resolve()) + "/"
    mounts = [
        line.split()[4].replace("\\040", " ")
        for line in Path("/proc/self/mountinfo").read_text().splitlines()
    ]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "--lazy", mount], capture_output=True, check=False)


def remove_node_leftovers(directory: Path) -> None:
    """What a stopped node leaves outside ``directory`` and its own processes: iptables
    chains, the kubepods cgroups, the kubelet's log links and socket, and the host
    directories it, containerd and libcni hard-code (when empty)."""
    _remove_chains()
    _remove_kubepods_cgroups()
    _remove_log_links(directory)
    with contextlib.suppress(OSError):  # the stopped kubelet's
        Path("/var/lib/kubelet/device-plugins/kubelet.sock").unlink()
    for path in HOST_DIRECTORIES:  # only if empty: they may hold someone else's
        with contextlib.suppress(OSError):
            Path(path).rmdir()


def _remove_log_links(directory: Path) -> None:
    """The kubelet's links in /var/log/containers to this node's container logs: it
    removes them when it collects containers, which a stopped kubelet never does."""
    links = Path("/var/log/containers")
    ours = str(directory.resolve()) + "/"
    for link in links.glob("*.log") if links.is_dir() else ():
        if link.is_symlink() and os.readlink(link).startswith(ours):
            link.unlink()


def _remove_chains() -> None:
    """The iptables chains the kubelet (KUBE-FIREWALL, its canaries), kube-proxy and the
    CNI plugins (the firewall plugin's CNI-FORWARD) leave, and the rules that jump to
    them; one node per machine, so every KUBE-* and CNI-* chain is this node's."""
    for table in ("filter", "nat", "mangle"):
        rules = _iptables(table, "-S").splitlines()
        ours = [r.split()[1] for r in rules if r.startswith(tuple(f"-N {p}" for p in PREFIXES))]
        for rule in rules:
            words = shlex.split(rule)  # comments are quoted
            jumps_to_ours = "-j" in words and words[words.index("-j") + 1].startswith(PREFIXES)
            if words[0] == "-A" and not words[1].startswith(PREFIXES) and jumps_to_ours:
                _iptables(table, "-D", *words[1:])
        for flag in ("-F", "-X"):
            for chain in ours:
                _iptables(table, flag, chain)


def _remove_kubepods_cgroups() -> None:
    """The kubelet's ``kubepods`` cgroups, empty once every container is gone."""
    for controller in Path("/sys/fs/cgroup").iterdir():
        top = controller / "kubepods"
        if not top.is_dir():
            continue
        for directory in sorted(
            (p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True
        ):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def _iptables(table: str, *args: str) -> str:
    """One iptables command (waiting for the xtables lock); its output, failures ignored."""
    return subprocess.run(
        ["iptables", "-w", "5", "-t", table, *args], capture_output=True, text=True, check=False
    ).stdout
