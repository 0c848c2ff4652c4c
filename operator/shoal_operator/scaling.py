"""The scaling policy: how many workers a pool needs, decided from queue depth. Pure.

Desired replicas = ceil((runnable + in flight) / target per replica), reached in one step
(not by doubling, as an HPA does), bounded by min/max and an optional surge. Stabilisation as
in the HPA: a scale-up takes the lowest recommendation of its window (0 s by default: at
once), a scale-down the highest of its window, so one quiet poll never shrinks a busy pool.
Scale-down moves by at most ``scale_down_step``; zero comes only when nothing is runnable or
in flight and the pool has been idle for ``idle_cooldown``. Scheduled-but-not-due tasks never
count: a delay of an hour is no reason to start a worker now; nor do ready tasks that a rate
limit or a concurrency key holds back (``QueueStats.held_back``): no extra worker could start
them, so a rate-limited queue gets the workers its limit lets run, not one per waiting task.
But a pool at zero is woken one *lead time* before the first scheduled task comes due (a
schedule's tick, typically), so that a worker is ready when it does: ``scheduleLeadSeconds``,
or by default the pod start time last observed (from a scale-up from zero to the first ready
replica) plus a margin; once woken for a scheduled task, the pool stays up until that task is
due (then it is work, and the cooldown counts from its end).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shoal_operator.spec import Autoscaling


@dataclass(frozen=True, slots=True)
class Demand:
    """Work measured for a pool at one instant, summed over its queues."""

    ready: int
    in_flight: int
    held_back: int = 0
    """Of ``ready``, the tasks limits hold back: waiting, but not runnable."""
    next_due_in: float | None = None
    """Seconds until the first scheduled task of the pool's queues comes due."""

    @property
    def work(self) -> int:
        return self.ready - self.held_back + self.in_flight


@dataclass(slots=True)
class History:
    """What the policy remembers about one pool between decisions."""

    recommendations: list[tuple[float, int]] = field(default_factory=list)
    last_busy: float | None = None
    """When work was last seen; the idle cooldown counts from here."""
    woken_at: float | None = None
    """When the pool was last scaled up from zero, until its first replica is ready."""
    pod_start: float | None = None
    """Seconds from that scale-up to the first ready replica, last time: the default lead."""
    held_until: float | None = None
    """The scheduled task the pool was woken for comes due then: no scale to zero before."""


DEFAULT_LEAD = 30.0
"""Seconds ahead of a scheduled task that a pool at zero is woken, before any pod start has
been observed (and with no ``scheduleLeadSeconds``): a typical image pull and start."""

LEAD_MARGIN = 10.0
"""Seconds added to an observed pod start: the wake-up happens at the first measurement
within the lead (up to a stats interval late), and a ready pod has yet to claim."""


def lead_time(policy: Autoscaling, history: History) -> float:
    """How long before a scheduled task a pool at zero is woken."""
    if policy.schedule_lead is not None:
        return float(policy.schedule_lead)
    if history.pod_start is None:
        return DEFAULT_LEAD
    return history.pod_start + LEAD_MARGIN


def observe_ready(history: History, ready: int, now: float) -> None:
    """Record the pod start time when a pool woken from zero has its first ready replica."""
    if ready > 0 and history.woken_at is not None:
        history.pod_start = max(0.0, now - history.woken_at)
        history.woken_at = None


@dataclass(frozen=True, slots=True)
class Decision:
    replicas: int
    reason: str

    def changes(self, current: int) -> bool:
        return self.replicas != current


def decide(
    policy: Autoscaling, current: int, demand: Demand, now: float, history: History
) -> Decision:
    """Replicas the pool should run now, and why. Updates ``history`` in place."""
    target = policy.target_per_replica or 1  # a parsed pool's is set: its concurrency
    lead = lead_time(policy, history)
    if demand.next_due_in is not None and demand.next_due_in <= lead:
        history.held_until = max(history.held_until or now, now + demand.next_due_in)
    due_soon = history.held_until is not None and now <= history.held_until
    if demand.work > 0 or due_soon or history.last_busy is None:
        # After an operator restart the cooldown starts afresh: never zero a pool at once.
        history.last_busy = now
    raw = math.ceil(demand.work / target)
    held = f" ({demand.held_back} held back by limits)" if demand.held_back else ""
    explanation = (
        f"{demand.ready} ready{held} + {demand.in_flight} in flight at {target} per replica"
    )
    if raw == 0 and due_soon:
        raw = 1  # a worker ready when the scheduled task comes due
        due_in = (history.held_until or now) - now
        explanation += f"; a scheduled task is due in {due_in:.0f}s ({lead:.0f}s lead)"
    floor = policy.min_replicas
    if raw == 0 and floor == 0 and current > 0:
        idle_for = now - history.last_busy
        if idle_for < policy.idle_cooldown:
            floor = 1
            explanation += f"; idle {idle_for:.0f}s of a {policy.idle_cooldown:.0f}s cooldown"
        else:
            explanation += f"; idle for {idle_for:.0f}s"
    recommended = min(max(raw, floor), policy.max_replicas)
    history.recommendations.append((now, recommended))
    horizon = now - max(policy.scale_up_window, policy.scale_down_window)
    history.recommendations = [(t, r) for t, r in history.recommendations if t >= horizon]

    if recommended > current:
        window = [r for t, r in history.recommendations if t >= now - policy.scale_up_window]
        replicas = max(min(window), current)
        if policy.max_surge is not None:
            replicas = min(replicas, current + policy.max_surge)
        if replicas == current:
            return Decision(
                current,
                f"{explanation}: {recommended} wanted, holding "
                f"{current} for the {policy.scale_up_window:.0f}s scale-up window",
            )
        verb = "scale up"
        if current == 0:
            history.woken_at = now
    elif recommended < current:
        window = [r for t, r in history.recommendations if t >= now - policy.scale_down_window]
        replicas = min(max(window), current)
        if replicas == current:
            return Decision(
                current,
                f"{explanation}: {recommended} wanted, holding "
                f"{current} for the {policy.scale_down_window:.0f}s "
                "scale-down window",
            )
        if policy.scale_down_step is not None:
            replicas = max(replicas, current - policy.scale_down_step)
        verb = "scale down"
    else:
        return Decision(current, f"{explanation}: {current} is right")
    return Decision(replicas, f"{explanation}: {verb} {current} → {replicas}")


def deletion_costs(in_flight_by_pod: dict[str, int], pods: list[str]) -> dict[str, int]:
    """``controller.kubernetes.io/pod-deletion-cost`` per pod: its tasks in flight.

    The ReplicaSet controller deletes the cheapest pods first on a scale-down, so idle
    workers go before busy ones; a pod whose worker has not reported yet costs nothing.
    """
    return {pod: in_flight_by_pod.get(pod, 0) for pod in pods}
