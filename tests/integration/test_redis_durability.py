"""Redis durability: the health's persistence report, and a dataset that vanishes while a
backend uses it. Each test runs a redis-server of its own without persistence (``appendonly
no``, ``save ""``) and restarts it, which empties it as a real one would be emptied."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from shoal.backends.redis import from_url
from shoal.core.errors import DatasetLost, LeaseLost, SchemaMissing
from shoal.core.ids import new_id
from shoal.core.models import HealthStatus, NewTask, WorkerInfo, utcnow
from tests.servers.redis import RedisServer


@pytest.fixture
def volatile(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(tmp_path / "redis", appendonly=False) as server:
        yield server


def tasks(count: int) -> list[NewTask]:
    due = utcnow() - timedelta(seconds=1)
    return [
        NewTask(new_id(), "default", "tasks.work", b"{}", run_at=due, max_attempts=3)
        for _ in range(count)
    ]


WORKER = WorkerInfo(id="w1", host="test-host", pid=1, queues=("default",), concurrency=4)


async def test_health_warns_when_redis_keeps_no_persistence(volatile: RedisServer) -> None:
    async with from_url(volatile.url(prefix="p")) as backend:
        await backend.setup()
        health = await backend.health()
        assert health.status is HealthStatus.DEGRADED and not health.durable
        assert health.details["persistence"] == "none"
        assert "a restart of the server loses every task" in health.warnings[0]

        with volatile.client() as client:
            client.config_set("save", "3600 1")
        snapshots = await backend.health()
        assert snapshots.status is HealthStatus.OK and snapshots.durable
        assert snapshots.details["persistence"] == "rdb snapshots (save 3600 1)"


async def test_a_vanished_dataset_is_reported_as_lost_not_as_other_workers_tasks(
    volatile: RedisServer,
) -> None:
    url = volatile.url(prefix="p")
    async with from_url(url) as producer:
        await producer.setup()
        await producer.push(tasks(20))
    async with from_url(url) as backend:
        claims = await backend.claim(["default"], "w1", 5, 30)
        assert len(claims) == 5
        volatile.restart()  # no AOF, no RDB: it comes back empty

        with pytest.raises(DatasetLost, match=r"vanished.*lost its data.*shoal migrate"):
            await backend.heartbeat(WORKER, [c.lease for c in claims], 30)
        with pytest.raises(DatasetLost):
            await backend.ack([claims[0].lease])
        with pytest.raises(DatasetLost):
            await backend.health()

        async with from_url(url) as newcomer:  # never saw the marker: cannot tell, says both
            with pytest.raises(SchemaMissing, match="never ran here, or the server lost"):
                await newcomer.verify_schema()
            await newcomer.setup()  # `shoal migrate`: the loss is accepted

        await backend.verify_schema()
        with pytest.raises(LeaseLost):
            await backend.ack([claims[0].lease])
        assert (await backend.heartbeat(WORKER, [claims[1].lease], 30)).lost == (claims[1].task.id,)
