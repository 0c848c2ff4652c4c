"""Leader election over a ``coordination.k8s.io`` Lease: the rules, pure.

Why a Lease and not kopf's peering: peering only pauses an operator when it sees a peer of
*higher* priority, two of equal priority both run (kopf just warns), and nothing fences a
paused operator's writes; it also needs CRDs of its own. A Lease is written with the API
server's compare-and-swap (``resourceVersion``), so at most one candidate wins each term,
and the rules below make the terms disjoint in time:

- a candidate takes the Lease only after it has seen the same record unchanged for a whole
  ``lease_duration`` on its *own* monotonic clock (as client-go does: no two machines'
  wall clocks are compared), or when the record is released or its own;
- the leader counts its term from the moment it *sent* its last successful renewal, and
  holds it for ``renew_deadline`` only, which is shorter than ``lease_duration``.

A standby can see a renewal only after it was sent, so the leader's term ends at least
``lease_duration - renew_deadline`` before any standby may take over: that margin covers a
write already in flight. Every write of the operator checks its term first
(:meth:`Term.holds`), so no scaling decision is applied by two operators.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from shoal.core.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class Timing:
    """The election's three durations, in seconds, all derived from the lease's."""

    lease_duration: float

    def __post_init__(self) -> None:
        if self.lease_duration < 2:
            raise ConfigurationError(
                f"lease duration {self.lease_duration}s is too short: give at least 2 seconds"
            )

    @property
    def renew_deadline(self) -> float:
        """How long a leader keeps its term without a successful renewal: 70 % of the
        lease, leaving 30 % for a write in flight when a standby may take over."""
        return self.lease_duration * 0.7

    @property
    def retry_period(self) -> float:
        """Between two renewals, and between two looks of a standby at the Lease: an eighth
        of the lease, so a leader gets five tries before its deadline, and a standby
        takes over at most an eighth after the lease ran out."""
        return self.lease_duration / 8


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """What a candidate reads of the Lease. ``version`` is its ``resourceVersion``, which
    changes at every write: the token of both the compare-and-swap and "unchanged"."""

    holder: str
    """``spec.holderIdentity``; empty when released"""
    duration: float
    transitions: int
    version: str
    acquired: str | None = None

    @classmethod
    def of(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=spec.get("holderIdentity") or "",
            duration=float(spec.get("leaseDurationSeconds") or 0),
            transitions=int(spec.get("leaseTransitions") or 0),
            version=str(lease["metadata"]["resourceVersion"]),
            acquired=spec.get("acquireTime"),
        )


@dataclass(slots=True)
class Observation:
    """A standby's memory of the Lease: the last record seen, and since when (its own
    monotonic clock) it has been unchanged."""

    record: LeaseRecord | None = None
    since: float = 0.0

    def see(self, record: LeaseRecord | None, now: float) -> None:
        if record is None or self.record is None or record.version != self.record.version:
            self.record, self.since = record, now

    def may_take(self, identity: str, now: float) -> bool:
        """Whether ``identity`` may write itself into the Lease now."""
        record = self.record
        if record is None or record.holder in ("", identity):
            return True
        return now - self.since >= record.duration


@dataclass(slots=True)
class Term:
    """The leader's view of its own term, on its monotonic clock."""

    timing: Timing
    valid_until: float = float("-inf")

    def renewed(self, sent_at: float) -> None:
        """A write of the Lease sent at ``sent_at`` succeeded."""
        self.valid_until = max(self.valid_until, sent_at + self.timing.renew_deadline)

    def end(self) -> None:
        self.valid_until = float("-inf")

    def holds(self, now: float) -> bool:
        return now < self.valid_until


def claimed(
    record: LeaseRecord | None,
    identity: str,
    timing: Timing,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The Lease's ``spec`` that makes ``identity`` its holder from ``now`` (a take-over
    counts a transition and starts a new ``acquireTime``; a renewal keeps them)."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    renewing = record is not None and record.holder == identity
    transitions = record.transitions if record is not None else 0
    if record is not None and not renewing:
        transitions += 1
    return {
        "holderIdentity": identity,
        "leaseDurationSeconds": max(1, round(timing.lease_duration)),
        "acquireTime": record.acquired if renewing and record is not None else stamp,
        "renewTime": stamp,
        "leaseTransitions": transitions,
    }


def released(record: LeaseRecord) -> dict[str, Any]:
    """The Lease's ``spec`` a leader leaves on a clean exit: no holder, so a standby takes
    over at its next look instead of after a whole lease duration."""
    return {
        "holderIdentity": None,
        "leaseDurationSeconds": 1,
        "leaseTransitions": record.transitions,
    }
