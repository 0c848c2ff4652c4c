"""``redis://`` and ``rediss://``: tasks in Redis, through redis-py's asyncio client.

Every state change is one Lua script (``lua/*.lua`` beside this module; ``lib.lua`` documents the
keys), loaded once and called by SHA; a script the server forgot (a restart, ``SCRIPT
FLUSH``) is loaded again on ``NOSCRIPT``. Each queue's keys share the hash tag
``{prefix:queue}``, so a queue lives on one Cluster slot. A task body is one hash; the
sorted sets that order tasks (ready by priority, scheduled by due time, running by lease
deadline, one index per status) hold only ids. Registries of queues and workers live under
``{prefix}``. The prefix (``?prefix=``, default ``shoal``) lets apps and tests share a
server without touching each other's keys.

Atomicity: a script is atomic on one server. ``push`` of a batch that spans queues and
``claim`` from several queues run as one script over those queues, so on Redis Cluster the
queues used together must share a slot; every other script touches one queue.

Wake-ups: scripts that make work ready ``PUBLISH`` the queue name on ``prefix:wake``; one
listener per backend, on its own connection so it never holds one of the pool's, turns
them into hints for the shared wait (:mod:`shoal.backends.shared.wakeups`). Messages sent
while the listener is disconnected are lost, so waiters also wake when it reconnects, and
their timeout is the polling fallback (the caller's next claim is the look).

TLS: ``rediss://`` connects with TLS and checks the server's certificate and host name;
``?ssl_ca_certs=`` names the CA file that signed it, ``ssl_certfile`` / ``ssl_keyfile`` a
client certificate and its key, ``ssl_cert_reqs=none`` turns the check off (:data:`TLS_OPTIONS`,
passed to redis-py as they are). A refused certificate raises :class:`BackendUnavailable` at
once, saying which option to check: retrying cannot fix it.

Reconnecting: an operation that fails on a connection error is retried with backoff for
``?reconnect_timeout=`` seconds (default 10), then raises :class:`BackendUnavailable`.
Retrying is safe because every script is idempotent on replay: a push skips ids already
stored, a claim returns what the same request already took, an ack or fail that finds its
own result counts as applied.

Clocks: leases, due times and ages are judged by the server's clock (``TIME`` in the
scripts), so workers' clocks need not agree; ``run_at`` comes from the producer's clock, so
a producer whose clock is off shifts its delayed tasks by that much. Priorities must lie in
-1024..1023 (the ready score orders them exactly). A batch is one script: it is atomic and
holds the server while it runs, so keep batches to thousands of tasks, not millions.

Durability is Redis's. Run it with ``appendonly yes`` and ``appendfsync everysec`` (or
``always``). With ``everysec``, a crash of the redis-server process loses nothing it
acknowledged, and a crash of the machine loses at most the last second or two of writes:
pushes (the tasks are gone), claims (the tasks run again), acks and fails (the tasks run
again). With ``always`` nothing acknowledged is lost. Without AOF, a restart loses every
write since the last RDB snapshot, queued tasks included, and with ``save ""`` all of them:
:meth:`~RedisBackend.health` warns of that, and a marker written by ``shoal migrate`` tells
a vanished dataset from an empty one (see :mod:`shoal.backends.redis.durability`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shoal.backends.base import Backend, OnConflict
from shoal.backends.redis import codec as rs
from shoal.backends.redis import durability
from shoal.backends.redis.admin import RedisAdmin
from shoal.backends.redis.codec import Arg
from shoal.backends.redis.keys import BATCH
from shoal.backends.redis.link import Link, Script, scrub
from shoal.backends.redis.listener import Listener
from shoal.backends.redis.options import RedisOptions
from shoal.backends.redis.results import RedisResults
from shoal.backends.redis.retention import expire
from shoal.backends.redis.schedules import RedisSchedules
from shoal.backends.redis.stats import RedisStats
from shoal.backends.redis.throughput import RedisThroughput
from shoal.backends.shared.fencing import heartbeat_reply, lost_leases, refuse_lost
from shoal.backends.shared.finishes import Finishes
from shoal.backends.shared.idempotency import conflict, resolve
from shoal.backends.shared.limiting import SCAN
from shoal.backends.shared.reaping import (
    REQUEUE_MIN_ATTEMPTS_LEFT,
    lease_expired_message_parts,
    report,
)
from shoal.backends.shared.storable import check_storable
from shoal.backends.shared.wakeups import Wakeups
from shoal.core.errors import ConfigurationError
from shoal.core.models import (
    BackendHealth,
    Claim,
    Failure,
    HeartbeatReply,
    KeptValue,
    Lease,
    NewTask,
    ReapReport,
    WorkerInfo,
)
from shoal.core.retention import Retention
from shoal.core.urls import redact

PRIORITY_RANGE = range(-1024, 1024)
"""Priorities Redis orders exactly: the ready score has one band per priority."""

MIN_SERVER_VERSION = (6, 2)
"""``ZRANGE ... BYLEX REV`` (listing) arrived in Redis 6.2."""

_TOKEN_LENGTH = 32  # a lease token is a uuid4 hex followed by the queue name


TLS_OPTIONS = frozenset({"ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs"})
"""redis-py's TLS options that its URL parser passes on as text (``ssl_check_hostname`` and
the others it parses are in ``URL_QUERY_ARGUMENT_PARSERS``)."""


def from_url(url: str, *, client: aioredis.Redis | None = None) -> RedisBackend:
    """Build a backend for ``url``; pass ``client`` to share its connection pool.

    Shoal's own query parameters are :class:`RedisOptions`; the others are redis-py's
    (``socket_timeout``, ``max_connections``, ...), parsed by redis-py's own parsers. With
    ``client`` the URL still names the prefix, and the client's own connection settings are
    used as they are.
    """
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    ours = {key: query.pop(key) for key in RedisOptions.model_fields if key in query}
    unknown = sorted(set(query) - set(URL_QUERY_ARGUMENT_PARSERS) - TLS_OPTIONS)
    if unknown:
        raise ConfigurationError(f"unknown option(s) {', '.join(unknown)} in {redact(url)}")
    tls = sorted(key for key in query if key.startswith("ssl_"))  # every TLS option
    if tls and parts.scheme != "rediss":
        raise ConfigurationError(
            f"{', '.join(tls)} configure TLS, which needs a rediss:// URL: {redact(url)}"
        )
    try:
        options = RedisOptions.model_validate(ours)
    except ConfigurationError as exc:
        raise ConfigurationError(f"bad option: {exc.message} in {redact(url)}") from exc
    owned = client is None
    try:
        if client is None:
            # Shoal retries itself (see Link.attempt), so redis-py must not retry underneath.
            client = aioredis.Redis.from_url(
                urlunsplit(parts._replace(query=urlencode(query))),
                socket_connect_timeout=5, socket_timeout=10, retry=Retry(NoBackoff(), 0),
            )  # fmt: skip
    except ValueError as exc:
        detail = scrub(str(exc), parts.password)
        raise ConfigurationError(f"invalid Redis URL {redact(url)}: {detail}") from exc
    if client.connection_pool.connection_kwargs.get("decode_responses"):
        raise ConfigurationError("shoal needs a Redis client with decode_responses=False")
    return RedisBackend(url, client, owned=owned, **options.model_dump())


class RedisBackend(RedisThroughput, RedisResults, RedisStats, RedisAdmin, RedisSchedules, Backend):
    """The contract over Redis; one instance serves any number of queues and apps. Its
    primitives are mixed in by concept: ``results.py``, ``stats.py``, ``admin.py``,
    ``schedules.py``, over the key names of ``keys.py``; the leases' life is here."""

    def __init__(
        self,
        url: str,
        client: aioredis.Redis,
        *,
        prefix: str = "shoal",
        owned: bool = True,
        reconnect_timeout: float = 10.0,
    ) -> None:
        self.url = redact(url)
        self.prefix = prefix
        self._link = Link(
            client, url=self.url, secret=urlsplit(url).password,
            reconnect_timeout=reconnect_timeout,
        )  # fmt: skip
        self._owned = owned
        self._queues_key = f"{{{prefix}}}:queues"
        self._workers_keys = [f"{{{prefix}}}:workers", f"{{{prefix}}}:seen"]
        self._channel = f"{prefix}:wake"
        self._results_channel = f"{prefix}:results"
        self._wakeups = Wakeups()
        self._finishes = Finishes()
        self._listener = Listener(
            client, self._channel, self._wakeups, results=(self._results_channel, self._finishes)
        )
        self._marker = durability.Marker(prefix, self.url)

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client, to share its pool with another backend or with app code."""
        return self._link.client

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, check the server version and load the scripts; fail fast, no retries."""
        await self._link.attempt(lambda _: self._prepare(), retry=False)

    async def close(self) -> None:
        await self._listener.close()
        if self._owned:
            await self.client.connection_pool.disconnect()

    async def setup(self) -> None:
        """Check the version, load the scripts, write the dataset marker (once)."""
        await self._link.attempt(lambda _: self._prepare())
        await self._link.send([self._marker.write()])
        await self.verify_schema()

    async def verify_schema(self) -> None:
        """Redis has no schema: check the server's version and the dataset marker."""
        await self._link.attempt(lambda _: self._check_version())
        [marker], _ = await self._link.send([("GET", self._marker.key)])
        self._marker.found(marker)

    async def health(self) -> BackendHealth:
        """The version and the dataset marker checked, and the server's persistence."""
        await self.verify_schema()
        return await self._link.attempt(lambda _: durability.persistence(self.client))

    async def _prepare(self) -> None:
        await self._check_version()
        await self._link.load_scripts()
        if self._marker.seen is None:  # from now on its vanishing is a data loss
            self._marker.seen = cast(bytes | None, await self.client.get(self._marker.key))

    async def _check_version(self) -> None:
        version = str((await self.client.info("server")).get("redis_version", "0"))
        found = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
        if found < MIN_SERVER_VERSION:
            raise ConfigurationError(f"shoal needs Redis 6.2 or newer; {self.url} runs {version}")

    # -- plumbing ----------------------------------------------------------------------------

    def _by_queue(self, leases: Iterable[Lease]) -> dict[str, list[Lease]]:
        """Group leases by the queue their token names; a malformed token is left out, so
        it is never applied: lost."""
        groups: dict[str, list[Lease]] = {}
        for lease in leases:
            if len(lease.token) > _TOKEN_LENGTH:
                groups.setdefault(lease.token[_TOKEN_LENGTH:], []).append(lease)
        return groups

    @staticmethod
    def _applied(groups: dict[str, list[Lease]], refused: Iterable[bytes | str]) -> set[str]:
        """The tasks a script applied: those sent to it that it did not refuse."""
        sent = {lease.task_id for leases in groups.values() for lease in leases}
        return sent.difference(rs.text(task_id) for task_id in refused)

    # -- producers ---------------------------------------------------------------------------

    async def push(
        self, tasks: Sequence[NewTask], *, on_conflict: OnConflict = OnConflict.RAISE
    ) -> list[str]:
        check_storable(tasks)
        if not tasks:
            return []
        for t in tasks:
            if t.priority not in PRIORITY_RANGE:
                raise ConfigurationError(
                    f"priority {t.priority} of task {t.id} is outside -1024..1023 on redis://"
                )
        batch = resolve(tasks, {})  # the batch against itself; push.lua checks the store
        # A batch that conflicts with itself cannot be stored: only the store's keys to name.
        check = bool(batch.conflicts) and on_conflict is OnConflict.RAISE
        queues = list(dict.fromkeys(t.queue for t in batch.fresh))
        index = {queue: n for n, queue in enumerate(queues, 1)}
        args: list[Arg] = ["check" if check else on_conflict.value, self._channel, *queues]
        for t in batch.fresh:
            args += [index[t.queue], *rs.new_task_fields(t)]
        push = Script("push", [self._base(q) for q in queues], args)
        # The registry is a key of its own (its own slot), updated in the same round trip.
        (_, reply), _ = await self._link.send([("SADD", self._queues_key, *queues), push])
        if reply[0] == 0:
            pairs = zip(reply[1::2], reply[2::2], strict=True)
            held = {(queues[int(n) - 1], rs.text(key)) for n, key in pairs}
            raise conflict(tasks, {*batch.conflicts, *held})
        self._wakeups.work(queues)
        stored = dict(zip((t.id for t in batch.fresh), map(rs.text, reply[1:]), strict=True))
        return [stored[task_id] for task_id in batch.ids]

    # -- workers -----------------------------------------------------------------------------

    async def claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease_seconds: float
    ) -> list[Claim]:
        if limit <= 0 or not queues:
            return []
        return await self._claim(queues, worker_id, limit, lease_seconds, uuid.uuid4().hex)

    async def _claim(
        self, queues: Sequence[str], worker_id: str, limit: int, lease: float, request: str
    ) -> list[Claim]:
        """One claim; replaying the same ``request`` returns the same claims (see claim.lua)."""
        self._wakeups.claiming(queues)
        names = list(dict.fromkeys(queues))
        args: list[Arg] = [worker_id, limit, rs.span(lease), request, BATCH, SCAN, *names]
        [reply] = await self._link.scripts(Script("claim", [self._base(q) for q in names], args))
        return [
            Claim(task, Lease(task.id, token, task.attempts)) for task, token in rs.exported(reply)
        ]

    async def ack(self, leases: Sequence[Lease], results: Sequence[KeptValue] = ()) -> None:
        groups = self._by_queue(leases)
        values = {r.task_id: r for r in results}
        scripts = []
        for queue, group in groups.items():
            args = rs.token_args(group)
            kept = [values[lease.task_id] for lease in group if lease.task_id in values]
            if kept:  # after an empty token (see ack.lua)
                args += ["", self._results_channel]
                args += [a for k in kept for a in (k.task_id, k.value, rs.millis(k.expires_at))]
            scripts.append(Script("ack", [self._base(queue)], args))
        applied = await self._settle(leases, groups, scripts)
        self._finishes.finished(task_id for task_id in values if task_id in applied)
        refuse_lost(leases, applied)

    async def fail(self, failures: Sequence[Failure]) -> None:
        leases = [f.lease for f in failures]
        groups = self._by_queue(leases)
        by_id = {f.lease.task_id: f for f in failures}
        scripts = []
        for queue, group in groups.items():
            args: list[Arg] = [self._channel, queue, self._results_channel]
            for lease in group:
                failure = by_id[lease.task_id]
                retry_at = "" if failure.retry_at is None else rs.micros(failure.retry_at)
                keep = "" if failure.keep_until is None else rs.millis(failure.keep_until)
                args += [*rs.lease_args([lease]), failure.error, retry_at]
                args += [failure.traceback or "", keep]
            scripts.append(Script("fail", [self._base(queue)], args))
        applied = await self._settle(leases, groups, scripts)
        self._finishes.finished(
            f.lease.task_id for f in failures if f.retry_at is None and f.lease.task_id in applied
        )
        refuse_lost(leases, applied)

    async def _settle(
        self, leases: Sequence[Lease], groups: dict[str, list[Lease]], scripts: Sequence[Script]
    ) -> set[str]:
        """Send ``scripts``; return the ids of the tasks they applied (the caller refuses the
        rest)."""
        refused: list[bytes] = []
        if scripts:
            replies, attempt = await self._link.send(scripts)
            for reply in replies:
                for task_id, code in zip(reply[::2], reply[1::2], strict=True):
                    # Code 1 after a broken attempt: that attempt applied it, so it is ours.
                    if not (attempt > 0 and code == 1):
                        refused.append(task_id)
        applied = self._applied(groups, refused)
        if lost_leases(leases, applied):
            # Tasks that are simply gone are a lost dataset, not other workers' tasks.
            [exists], _ = await self._link.send([("EXISTS", self._marker.key)])
            self._marker.exists(exists)
        return applied

    async def release(self, leases: Sequence[Lease]) -> None:
        groups = self._by_queue(leases)
        scripts = [
            Script("release", [self._base(q)], [self._channel, q, *rs.lease_args(ls)])
            for q, ls in groups.items()
        ]
        if scripts:
            await self._link.scripts(*scripts)
            self._wakeups.work(groups)

    async def heartbeat(
        self, worker: WorkerInfo, leases: Sequence[Lease], lease_seconds: float
    ) -> HeartbeatReply:
        groups = self._by_queue(leases)
        report = json.dumps(
            {
                "host": worker.host, "pid": worker.pid, "queues": list(worker.queues),
                "concurrency": worker.concurrency, "in_flight": worker.in_flight,
                "started_at": rs.micros(worker.started_at), "version": worker.version,
            }
        )  # fmt: skip
        beat = Script("workers", self._workers_keys, ["beat", worker.id, report])
        extends = [
            Script("extend", [self._base(q)], [rs.span(lease_seconds), *rs.lease_args(ls)])
            for q, ls in groups.items()
        ]
        replies, _ = await self._link.send([("EXISTS", self._marker.key), beat, *extends])
        self._marker.exists(replies[0])
        refused = [task_id for lost, _ in replies[2:] for task_id in lost]
        asked = {
            rs.text(pairs[n]): rs.text(pairs[n + 1])
            for _, pairs in replies[2:]
            for n in range(0, len(pairs), 2)
        }
        applied = self._applied(groups, refused)
        return heartbeat_reply(leases, {task_id: asked.get(task_id) for task_id in applied})

    async def cancel_running(self, leases: Sequence[Lease]) -> None:
        groups = self._by_queue(leases)
        scripts = [
            Script("cancelled", [self._base(q)], [self._results_channel, *rs.lease_args(ls)])
            for q, ls in groups.items()
        ]
        applied = await self._settle(leases, groups, scripts)
        self._finishes.finished(applied)
        refuse_lost(leases, applied)

    async def deregister(self, worker_id: str) -> None:
        hash_key, seen_key = self._workers_keys
        await self._link.send([("HDEL", hash_key, worker_id), ("ZREM", seen_key, worker_id)])

    async def reap(
        self, *, worker_timeout: float, retention: Mapping[str, Retention] | None = None
    ) -> ReapReport:
        # The script decides as shoal.backends.shared.reaping.judge does, with its parameters.
        rule: list[Arg] = [REQUEUE_MIN_ATTEMPTS_LEFT, *lease_expired_message_parts()]
        prune = Script("workers", self._workers_keys, ["prune", rs.span(worker_timeout)])
        names = await self._queue_names()
        reaps = [Script("reap", [self._base(q)], [BATCH, self._channel, q, *rule]) for q in names]
        replies = await self._link.scripts(prune, *reaps)
        requeued = [rs.text(i) for requeued, _ in replies[1:] for i in requeued]
        dead = [rs.text(i) for _, dead in replies[1:] for i in dead]
        requeued_in = [q for q, (r, _) in zip(names, replies[1:], strict=True) if r]
        if requeued_in:
            self._wakeups.work(requeued_in)
        if dead:  # whoever waits for them, here and elsewhere, hears that they died
            self._finishes.finished(dead)
            await self._link.send([("PUBLISH", self._results_channel, "\n".join(dead))])
        await expire(self._link, self._base, retention or {})
        return report(requeued, dead)

    # -- observers ---------------------------------------------------------------------------

    async def wait_for_work(self, queues: Sequence[str], timeout: float) -> None:
        """Pub/sub wake-ups; pushes from this instance wake its waiters at once."""
        self._listener.start()
        await self._wakeups.wait_for_work(queues, timeout)
