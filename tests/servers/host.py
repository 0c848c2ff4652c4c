"""What the servers that run as root leave on the host, and how to take it away again."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


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
