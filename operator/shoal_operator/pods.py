"""What a worker pod's status says about its worker. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_NEVER_LOCATED = "ContainerStatusUnknown"
"""The kubelet's reason for a container it could not find when its pod ended: never a
worker's own exit."""


def worker_crash(pod: Mapping[str, Any]) -> str | None:
    """Why the pod's worker keeps exiting, or None while it is not crashing.

    A container that is not ready and last terminated with a non-zero code is crashing; the
    termination message (the worker's last log lines, by ``FallbackToLogsOnError``) says why.
    A pod being deleted is not crashing, whatever its containers ended with: a scale-down
    can delete a pod whose container the kubelet had not started yet, and the kubelet then
    reports it terminated with 137 and ``ContainerStatusUnknown`` ("could not be located
    when the pod was terminated"), which says nothing about the worker.
    """
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if container.get("ready"):
            continue
        terminated = (container.get("lastState") or {}).get("terminated") or (
            (container.get("state") or {}).get("terminated")
        )
        if terminated and terminated.get("reason") == _NEVER_LOCATED:
            continue
        if terminated and terminated.get("exitCode", 0) != 0:
            message = (terminated.get("message") or terminated.get("reason") or "").strip()
            last_line = message.splitlines()[-1] if message else "no message"
            restarts = container.get("restartCount", 0)
            return (
                f"the worker exited with code {terminated['exitCode']} "
                f"({restarts} restarts): {last_line}"
            )
    return None
