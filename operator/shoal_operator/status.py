"""Status writes through a cache: a resource's status is written only when it differs from
what was last written, so a steady state costs no API calls. Conditions that flip post an
Event, when asked."""

from __future__ import annotations

from typing import Any

from shoal_operator.conditions import set_condition
from shoal_operator.kube import Kube
from shoal_operator.spec import ObjectRef
from shoal_operator.state import Pool, QueueEntry, Status


class StatusWriter:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._written: dict[ObjectRef, dict[str, Any]] = {}

    async def write(self, target: ObjectRef, status: Status) -> None:
        key = _without_uid(target)
        body = status.to_json()
        if self._written.get(key) == body:
            return
        await self.kube.patch_status(target, body)
        self._written[key] = body

    def forget(self, target: ObjectRef) -> None:
        self._written.pop(_without_uid(target), None)

    async def pool_condition(
        self,
        pool: Pool,
        type_: str,
        ok: bool,
        reason: str,
        message: str,
        event_type: str | None = None,
    ) -> None:
        """Set a pool's condition and write its status; post an Event when ``event_type``
        is given and the condition flips."""
        before = [c.ok for c in pool.conditions if c.type == type_]
        pool.conditions = set_condition(
            pool.conditions, type_, ok, reason, message, pool.generation
        )
        if event_type and before != [ok]:
            await self.kube.event(pool.reference, reason, message, event_type)
        await self.write(pool.reference, pool.status())

    async def queue_reachable(self, entry: QueueEntry, ok: bool, reason: str, message: str) -> None:
        """Set a queue's ``Reachable`` condition and write it."""
        entry.conditions = set_condition(entry.conditions, "Reachable", ok, reason, message, None)
        await self.write(entry.reference, Status(conditions=entry.conditions))


def _without_uid(target: ObjectRef) -> ObjectRef:
    # One cache entry per object, whether or not the caller knew its uid.
    return ObjectRef(target.kind, target.namespace, target.name)
