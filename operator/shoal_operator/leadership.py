"""One operator of several at work: campaign for the Lease, keep it, fence every write.

The rules are in :mod:`shoal_operator.election`; this module reads and writes the Lease.
A standby only campaigns (kopf does not run in it, so it writes nothing at all); the leader
runs kopf and renews, and :meth:`Leadership.check` stops its writes the moment its term
ends, before any standby may take over.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import socket
import time
from typing import Any, cast

import aiohttp
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from shoal_operator import metrics
from shoal_operator.election import LeaseRecord, Observation, Term, Timing, claimed, released
from shoal_operator.errors import LeadershipLost

logger = logging.getLogger("shoal_operator.leadership")


def new_identity() -> str:
    """The pod's name (its hostname) and a suffix of this process: a restarted container
    is a new candidate, never mistaken for the leader it replaces."""
    return f"{socket.gethostname()}_{secrets.token_hex(3)}"


class Leadership:
    """This process's candidacy for one Lease."""

    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        timing: Timing,
        identity: str | None = None,
    ) -> None:
        self.api = api
        self.leases = client.CoordinationV1Api(api)
        self.namespace, self.name, self.timing = namespace, name, timing
        self.identity = identity or new_identity()
        self.term = Term(timing)
        self._seen = Observation()
        self._record: LeaseRecord | None = None

    def holds(self) -> bool:
        return self.term.holds(time.monotonic())

    def check(self) -> None:
        """Raise :class:`LeadershipLost` unless this process's term is still running."""
        if not self.holds():
            raise LeadershipLost(
                f"{self.identity} no longer holds Lease {self.namespace}/{self.name}; "
                "the operator that does makes the changes"
            )

    async def campaign(self) -> None:
        """Return once this process leads, looking at the Lease every retry period."""
        logger.info("%s standing by for Lease %s/%s", self.identity, self.namespace, self.name)
        while True:
            if await self._try(taking=True):
                break
            await asyncio.sleep(self.timing.retry_period)
        metrics.LEADER.set(1)
        logger.info("%s leads (Lease %s/%s)", self.identity, self.namespace, self.name)

    async def keep(self, lost: asyncio.Event) -> None:
        """Renew every retry period until the term ends unrenewed; then set ``lost``."""
        while True:
            await asyncio.sleep(self.timing.retry_period)
            if not await self._try(taking=False) and not self.holds():
                break
        metrics.LEADER.set(0)
        logger.error(
            "%s lost Lease %s/%s (not renewed within %.1fs): stopping",
            self.identity,
            self.namespace,
            self.name,
            self.timing.renew_deadline,
        )
        lost.set()

    async def release(self) -> None:
        """Leave the Lease without a holder, if this process still holds it."""
        record = self._record
        if record is None or not self.holds():
            return
        self.term.end()
        metrics.LEADER.set(0)
        try:
            await self._write(record, released(record))
            logger.info("%s released Lease %s/%s", self.identity, self.namespace, self.name)
        except (ApiException, aiohttp.ClientError, OSError, TimeoutError) as error:
            logger.warning("could not release Lease %s/%s: %s", self.namespace, self.name, error)

    async def _try(self, *, taking: bool) -> bool:
        """One read and, where the rules allow, one write of the Lease; True if this
        process holds it afterwards. A conflict (another writer was first) is a loss."""
        sent = time.monotonic()
        try:
            record = await self._read()
            self._seen.see(record, sent)
            held_by_another = record is not None and record.holder not in ("", self.identity)
            if held_by_another and not taking:
                self.term.end()  # another candidate took it: this term is over
                return False
            if held_by_another and not self._seen.may_take(self.identity, sent):
                return False
            spec = claimed(record, self.identity, self.timing, datetime.datetime.now(datetime.UTC))
            self._record = await self._write(record, spec)
        except ApiException as error:
            if error.status != 409:
                logger.warning(
                    "Lease %s/%s: %s %s: %s",
                    self.namespace,
                    self.name,
                    error.status,
                    error.reason,
                    error.body,
                )
            return False
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            logger.warning("Lease %s/%s unreachable: %s", self.namespace, self.name, error)
            return False
        self.term.renewed(sent)
        return True

    async def _read(self) -> LeaseRecord | None:
        try:
            metrics.API_REQUESTS.labels("get", "leases").inc()
            lease = await self.leases.read_namespaced_lease(
                self.name, self.namespace, _request_timeout=self.timing.retry_period
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return LeaseRecord.of(self.api.sanitize_for_serialization(lease))

    async def _write(self, record: LeaseRecord | None, spec: dict[str, Any]) -> LeaseRecord:
        """Create the Lease, or replace the version read (409 if it changed since)."""
        body: dict[str, Any] = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        timeout = self.timing.retry_period
        if record is None:
            metrics.API_REQUESTS.labels("create", "leases").inc()
            written = await self.leases.create_namespaced_lease(
                self.namespace, cast(Any, body), _request_timeout=timeout
            )
        else:
            body["metadata"]["resourceVersion"] = record.version
            metrics.API_REQUESTS.labels("update", "leases").inc()
            written = await self.leases.replace_namespaced_lease(
                self.name, self.namespace, cast(Any, body), _request_timeout=timeout
            )
        return LeaseRecord.of(self.api.sanitize_for_serialization(written))
