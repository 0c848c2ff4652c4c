"""Pure types of a workflow: its state, each node's state, and the error naming a failed branch.

A workflow is a plan of nodes (a step, a fan-out, a fold); its state lives in the backend.
Nothing here does I/O, so the backends, the app and the worker share one vocabulary.
"""

from __future__ import annotations

import enum

from shoal.core.errors import ShoalError


class WorkflowState(enum.StrEnum):
    """Where a whole workflow stands."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        """True once the workflow can change no more (only running can)."""
        return self is not WorkflowState.RUNNING


class NodeState(enum.StrEnum):
    """Where one node of the plan stands: not started, started (its tasks pushed), or ended."""

    PENDING = "pending"
    STARTED = "started"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


class WorkflowFailed(ShoalError):
    """The workflow failed."""

    def __init__(self, workflow_id: str, node: str, branch: int | None, error: str) -> None:
        self.workflow_id = workflow_id
        self.node = node
        """The name of the node whose step failed."""
        self.branch = branch
        """Which item of a fan-out failed (its index), or None for a single step."""
        self.error = error
        where = node if branch is None else f"{node}[{branch}]"
        super().__init__(f"workflow {workflow_id} failed at {where}: {error}")
