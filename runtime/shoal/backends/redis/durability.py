"""Whether a Redis server keeps what it acknowledged, and whether it still holds shoal's data.

Redis without persistence (``appendonly no`` and ``save ""``) forgets every task when it
restarts, and an empty dataset looks just like a new one: queues list nothing, and workers'
acks are refused as if other workers owned their tasks. So:

- :func:`persistence` reads ``INFO persistence`` and ``CONFIG GET save``: neither AOF nor
  RDB snapshots is a warning in the backend's health (and a refusal for a worker that
  requires persistence).
- ``shoal migrate`` (:meth:`RedisBackend.setup`) writes a **marker** key under the prefix,
  with the time it was written. A process that has seen the marker and then finds it gone
  knows the dataset vanished (:class:`~shoal.core.errors.DatasetLost`); one that never saw
  it cannot tell an empty server from a lost one, and says both
  (:class:`~shoal.core.errors.SchemaMissing`). Running ``shoal migrate`` again writes a new
  marker: the way to accept the loss and carry on.
"""

from __future__ import annotations

from datetime import UTC, datetime

import redis.asyncio as aioredis
from redis import exceptions as rex

from shoal.core.errors import DatasetLost, SchemaMissing
from shoal.core.models import BackendHealth


class Marker:
    """The key ``shoal migrate`` writes under a prefix, and what this process saw of it."""

    def __init__(self, prefix: str, url: str) -> None:
        self.prefix = prefix
        self.key = f"{{{prefix}}}:dataset"
        self.url = url
        self.seen: bytes | None = None

    def write(self) -> tuple[str, ...]:
        """The command that writes it unless it is there (its value: when it was written)."""
        return ("SET", self.key, datetime.now(UTC).isoformat(timespec="seconds"), "NX")

    def found(self, value: bytes | None) -> None:
        """Judge a ``GET`` of the key: raise if it is missing, else remember it."""
        if value is None:
            if self.seen is not None:
                raise self.vanished()
            raise SchemaMissing(
                f"no shoal dataset under the prefix {self.prefix!r} on this Redis: either "
                "`shoal migrate` never ran here, or the server lost its data (a restart "
                "without persistence, a flush, a failover to an empty replica); run "
                "`shoal migrate`",
                url=self.url,
            )
        self.seen = value

    def exists(self, count: int) -> None:
        """Judge an ``EXISTS`` of the key: raise if a marker seen before is gone."""
        if self.seen is not None and not count:
            raise self.vanished()

    def vanished(self) -> DatasetLost:
        written = (self.seen or b"?").decode("utf-8", "replace")
        return DatasetLost(
            f"the Redis dataset under the prefix {self.prefix!r} vanished: the marker "
            f"`shoal migrate` wrote at {written} is gone, so the server lost its data (a "
            "restart without persistence, a flush, a failover to an empty replica) and the "
            "tasks it held are lost; run `shoal migrate` to accept the loss and carry on",
            url=self.url,
        )


async def persistence(client: aioredis.Redis) -> BackendHealth:
    """What the server does to survive a restart, as the backend's health."""
    info = await client.info("persistence")
    aof = str(info.get("aof_enabled", "0")) == "1"
    try:
        save: str | None = str((await client.config_get("save")).get("save", ""))
    except rex.ResponseError:  # CONFIG renamed or forbidden, as on managed services
        save = None
    if aof:
        return BackendHealth({"persistence": "aof"})
    if save:
        return BackendHealth({"persistence": f"rdb snapshots (save {save})"})
    if save is None:
        return BackendHealth({"persistence": "no aof; rdb unknown (CONFIG GET refused)"})
    return BackendHealth(
        {"persistence": "none"},
        (
            'Redis keeps no persistence (appendonly no, save ""): a restart of the server '
            "loses every task; run it with appendonly yes",
        ),
        durable=False,
    )
