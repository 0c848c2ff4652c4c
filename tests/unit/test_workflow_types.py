"""The pure workflow types: finished states and the error naming its branch."""

from shoal.core.errors import ShoalError
from shoal.core.workflows import WorkflowFailed, WorkflowState


def test_only_running_is_unfinished() -> None:
    assert [s for s in WorkflowState if not s.finished] == [WorkflowState.RUNNING]


def test_workflow_failed_names_the_branch() -> None:
    error = WorkflowFailed("wf1", "square", 7, "ValueError: bad")
    assert isinstance(error, ShoalError)
    assert str(error) == "workflow wf1 failed at square[7]: ValueError: bad"
    assert (error.node, error.branch) == ("square", 7)
    assert "square:" in str(WorkflowFailed("wf1", "square", None, "x"))
