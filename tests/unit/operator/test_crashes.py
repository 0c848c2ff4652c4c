"""A pool's crashing workers, tracked pod by pod: pure."""

from __future__ import annotations

from shoal_operator.crashes import CrashTracker


def test_a_crashing_pod_turns_the_pool_unhealthy_until_it_runs_or_goes() -> None:
    tracker = CrashTracker()
    assert tracker.observe("pool-b", None).ok
    health = tracker.observe("pool-b", "the worker exited with code 2 (3 restarts): bad app")
    assert (health.ok, health.reason) == (False, "WorkerCrashing")
    assert health.message.startswith("pod pool-b: the worker exited with code 2")
    # The first crashing pod by name speaks for the pool, whatever order they come in.
    assert tracker.observe("pool-a", "exited 1").message.startswith("pod pool-a: exited 1")
    assert not tracker.observe("pool-a", None).ok  # pool-b still crashes
    health = tracker.observe("pool-b", None)
    assert (health.ok, health.reason) == (True, "WorkersRunning")
