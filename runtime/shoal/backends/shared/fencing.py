"""Lost leases: which leases of a batch the store did not apply, decided once.

Every transition out of ``running`` (ack, fail, and the renewal a heartbeat makes) is
applied by the store only under the lease the task was claimed with. The store reports what
it applied; :func:`lost_leases` compares that with what was asked, and :func:`refuse_lost`
turns a loss into :class:`~shoal.core.errors.LeaseLost` after the rest was applied, and
:func:`heartbeat_reply` is a heartbeat's answer from the leases it renewed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping

from shoal.core.errors import LeaseLost
from shoal.core.models import HeartbeatReply, Lease


def lost_leases(asked: Iterable[Lease], applied: Collection[str]) -> list[str]:
    """The ids of the tasks whose lease was asked for but not applied, in the order asked,
    each once. ``applied`` holds the ids of the tasks the store changed under their lease
    (a worker holds one lease per task, so a batch names a task once)."""
    return list(dict.fromkeys(lease.task_id for lease in asked if lease.task_id not in applied))


def refuse_lost(asked: Iterable[Lease], applied: Collection[str]) -> None:
    """Raise :class:`LeaseLost` naming the leases the store did not apply, if any."""
    lost = lost_leases(asked, applied)
    if lost:
        raise LeaseLost(lost)


def heartbeat_reply(asked: Iterable[Lease], renewed: Mapping[str, str | None]) -> HeartbeatReply:
    """A heartbeat's answer: ``renewed`` maps each task whose lease the store renewed to
    who asked to cancel it (None when nobody did)."""
    cancelling = {task_id: by for task_id, by in renewed.items() if by is not None}
    return HeartbeatReply(tuple(lost_leases(asked, renewed)), cancelling)
