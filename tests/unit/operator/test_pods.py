"""Reading a worker pod's status: crashing or not, and why."""

from __future__ import annotations

from shoal_operator.pods import worker_crash

CRASH = "shoal: error: cannot import 'nope' for 'nope:app'"


def test_a_worker_that_keeps_exiting_is_crashing_with_its_last_line() -> None:
    pod = {
        "status": {
            "containerStatuses": [
                {
                    "ready": False,
                    "restartCount": 4,
                    "lastState": {
                        "terminated": {
                            "exitCode": 2,
                            "message": "starting\n" + CRASH,
                        }
                    },
                }
            ]
        }
    }
    assert worker_crash(pod) == (
        "the worker exited with code 2 (4 restarts): shoal: error: cannot import 'nope' for "
        "'nope:app'"
    )


def test_ready_or_cleanly_stopped_workers_are_not_crashing() -> None:
    ready = {
        "status": {
            "containerStatuses": [{"ready": True, "lastState": {"terminated": {"exitCode": 2}}}]
        }
    }
    drained = {
        "status": {
            "containerStatuses": [{"ready": False, "state": {"terminated": {"exitCode": 0}}}]
        }
    }
    assert worker_crash(ready) is None
    assert worker_crash(drained) is None
    assert worker_crash({"status": {}}) is None


def test_a_pod_deleted_before_its_container_started_is_not_crashing() -> None:
    """What a real kubelet reported for a pod a scale-down deleted while it was starting."""
    never_located = {
        "ready": False,
        "restartCount": 0,
        "state": {
            "terminated": {
                "exitCode": 137,
                "reason": "ContainerStatusUnknown",
                "message": "The container could not be located when the pod was terminated",
            }
        },
    }
    assert worker_crash({"status": {"containerStatuses": [never_located]}}) is None
    deleting = {
        "metadata": {"deletionTimestamp": "2026-12-02T01:45:00Z"},
        "status": {
            "containerStatuses": [
                {"ready": False, "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}
            ]
        },
    }
    assert worker_crash(deleting) is None
