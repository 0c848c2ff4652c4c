"""Leader election on a real kube-apiserver's Lease, two candidates in one process: one
wins, the other waits out a whole lease after the last renewal (or only a look after a
release), and a term that is over fences every write."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from kubernetes_asyncio import config

from shoal_operator.election import Timing
from shoal_operator.errors import LeadershipLost
from shoal_operator.leadership import Leadership
from tests.servers.kubernetes import KubernetesCluster

TIMING = Timing(lease_duration=3)


async def candidates(cluster: KubernetesCluster, namespace: str) -> list[Leadership]:
    name = f"lease-{uuid.uuid4().hex[:6]}"
    found = []
    for who in ("a", "b"):
        api = await config.new_client_from_config(str(cluster.kubeconfig))
        found.append(Leadership(api, namespace, name, TIMING, identity=who))
    return found


async def close(*candidates: Leadership) -> None:
    for candidate in candidates:
        await candidate.api.close()


@pytest.mark.timeout(60)
async def test_one_candidate_wins_and_the_other_waits_out_the_lease(
    kube_cluster: KubernetesCluster, kube_namespace: str
) -> None:
    a, b = await candidates(kube_cluster, kube_namespace)
    try:
        # Both campaign at once: the compare-and-swap lets one through.
        first = asyncio.create_task(a.campaign())
        second = asyncio.create_task(b.campaign())
        done, _ = await asyncio.wait({first, second}, return_when=asyncio.FIRST_COMPLETED)
        winner, loser = (a, b) if first in done else (b, a)
        waiting = second if first in done else first
        assert winner.holds() and not loser.holds()
        winner.check()
        with pytest.raises(LeadershipLost, match="no longer holds Lease"):
            loser.check()
        # The winner renews for a while: the loser still waits.
        lost = asyncio.Event()
        keeper = asyncio.create_task(winner.keep(lost))
        await asyncio.sleep(TIMING.lease_duration * 1.5)
        assert not waiting.done() and not lost.is_set()
        # The winner stops renewing (as if killed): its term ends at the renew deadline, and
        # only after a whole lease duration unchanged may the loser take over.
        keeper.cancel()
        stopped = time.monotonic()
        await asyncio.wait_for(waiting, TIMING.lease_duration * 3)
        taken = time.monotonic() - stopped
        assert not winner.holds()
        assert TIMING.lease_duration - TIMING.retry_period <= taken
        assert taken <= TIMING.lease_duration + 2 * TIMING.retry_period + 1
        assert loser.holds()
    finally:
        await close(a, b)


@pytest.mark.timeout(60)
async def test_a_released_lease_is_taken_at_the_next_look(
    kube_cluster: KubernetesCluster, kube_namespace: str
) -> None:
    a, b = await candidates(kube_cluster, kube_namespace)
    try:
        await a.campaign()
        waiting = asyncio.create_task(b.campaign())
        await asyncio.sleep(TIMING.retry_period * 1.5)  # b has seen a's record
        assert not waiting.done()
        await a.release()
        released = time.monotonic()
        assert not a.holds()
        await asyncio.wait_for(waiting, TIMING.lease_duration)
        assert time.monotonic() - released <= TIMING.retry_period + 1
        # A leader that sees another holder in the Lease ends its term at once.
        lost = asyncio.Event()
        a.term.renewed(time.monotonic())  # as if a still believed it led
        await asyncio.wait_for(a.keep(lost), TIMING.lease_duration)
        assert lost.is_set() and not a.holds() and b.holds()
    finally:
        await close(a, b)
