"""What the Redis backend (:mod:`shoal.backends.redis`) is built from.

- :class:`Link`: one round trip of commands and scripts, scripts called by SHA and loaded
  again on ``NOSCRIPT``, connection errors retried with backoff until a deadline, and
  driver errors translated into shoal's, the password scrubbed from every message.
- :class:`Listener`: wake-ups from ``PUBLISH`` on a connection of its own.
- The codec between Redis hashes and :class:`~shoal.core.models.Task`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis import exceptions as rex
from redis.asyncio.connection import ConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from shoal.core.errors import BackendError, BackendUnavailable
from shoal.core.models import Lease, QueueStats, Task, TaskStatus

SCRIPTS = (
    "push", "claim", "ack", "fail", "release", "extend", "reap",
    "stats", "list", "retry", "cancel", "purge", "workers",
)  # fmt: skip

Arg = str | bytes | int
_T = TypeVar("_T")


def _load_lua() -> dict[str, str]:
    # Redis scripts cannot include one another, so lib.lua is prepended to each.
    folder = resources.files("shoal.backends") / "lua"
    lib = (folder / "lib.lua").read_text(encoding="utf-8")
    return {n: f"{lib}\n{(folder / f'{n}.lua').read_text(encoding='utf-8')}" for n in SCRIPTS}


LUA = _load_lua()
SHA = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in LUA.items()}


@dataclass(frozen=True, slots=True)
class Script:
    """One call of a Lua script from ``backends/lua``."""

    name: str
    keys: Sequence[str]
    args: Sequence[Arg]


Command = Script | tuple[Arg, ...]


class Link:
    """A Redis client with shoal's retry policy and error translation."""

    def __init__(
        self, client: aioredis.Redis, *, url: str, secret: str | None, reconnect_timeout: float
    ) -> None:
        self.client = client
        self.url = url
        self._secret = secret
        self._reconnect_timeout = reconnect_timeout

    async def attempt(self, op: Callable[[int], Awaitable[_T]], *, retry: bool = True) -> _T:
        """Run ``op(attempt)``; retry connection errors with backoff until the deadline.

        Safe because every script is idempotent when replayed (see the redis module).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self._reconnect_timeout if retry else 0.0)
        delay, attempt = 0.05, 0
        while True:
            try:
                return await op(attempt)
            except rex.AuthenticationError as exc:  # retrying cannot fix a wrong password
                raise self.error(BackendUnavailable, "Redis refused the credentials", exc) from exc
            except (rex.ConnectionError, rex.TimeoutError) as exc:  # BusyLoadingError too
                if loop.time() + delay > deadline:
                    raise self.error(BackendUnavailable, "cannot reach Redis", exc) from exc
            except rex.RedisError as exc:
                raise self.error(BackendError, "Redis failed", exc) from exc
            await asyncio.sleep(delay)
            delay, attempt = min(delay * 2, 1.0), attempt + 1

    def error(self, kind: type[BackendError], text: str, exc: Exception) -> BackendError:
        return kind(f"{text}: {scrub(str(exc), self._secret)}", url=self.url)

    async def load_scripts(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for text in LUA.values():
            pipe.script_load(text)
        await pipe.execute()

    async def send(self, commands: Sequence[Command]) -> tuple[list[Any], int]:
        """Run commands and scripts in one round trip; return their replies and the attempt
        that succeeded (above 0 when an earlier, broken attempt may have been applied)."""

        async def once(attempt: int) -> tuple[list[Any], int]:
            replies = await self._pipeline(commands)
            missing = [i for i, r in enumerate(replies) if isinstance(r, rex.NoScriptError)]
            if missing:  # the server lost its scripts (restart, SCRIPT FLUSH): none of them ran
                await self.load_scripts()
                again = await self._pipeline([commands[i] for i in missing])
                for i, reply in zip(missing, again, strict=True):
                    replies[i] = reply
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
            return replies, attempt

        return await self.attempt(once)

    async def scripts(self, *scripts: Script) -> list[Any]:
        return (await self.send(scripts))[0]

    async def _pipeline(self, commands: Sequence[Command]) -> list[Any]:
        """Replies in order, a command's error (NOSCRIPT among them) in its place."""
        if len(commands) == 1:
            # The hot path (a claim, an ack) is one script: a pipeline would cost the client
            # twice the CPU of a plain command for the same single round trip.
            try:
                reply = await self.client.execute_command(*_words(commands[0]))  # type: ignore[no-untyped-call]  # untyped in redis-py
                return [reply]
            except rex.ResponseError as exc:
                return [exc]
        pipe = self.client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*_words(command))
        return list(await pipe.execute(raise_on_error=False))


def _words(command: Command) -> tuple[Arg, ...]:
    if isinstance(command, Script):
        return ("EVALSHA", SHA[command.name], len(command.keys), *command.keys, *command.args)
    return command


class Listener:
    """Wakes local waiters when a queue's name is published on ``channel``.

    It runs on a pool of its own so that it never holds one of the main pool's
    connections. Messages published while it is disconnected are lost, so it wakes every
    waiter when the connection breaks; their timeouts are the polling fallback.
    """

    def __init__(self, client: aioredis.Redis, channel: str) -> None:
        pool = client.connection_pool
        kwargs = {**pool.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        self._pool = ConnectionPool(connection_class=pool.connection_class, **kwargs)
        self._channel = channel
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    async def wait(self, queues: Sequence[str], timeout: float) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._listen(), name=f"shoal {self._channel}")
        event = asyncio.Event()
        for queue in queues:
            self._waiters.setdefault(queue, set()).add(event)
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            for queue in queues:
                self._waiters[queue].discard(event)

    def wake(self, queues: Iterable[str]) -> None:
        for queue in queues:
            for event in self._waiters.get(queue, ()):
                event.set()

    async def close(self) -> None:
        task, self._task = self._task, None
        # Cancel until the task ends: Python 3.11's asyncio.wait_for, which redis-py uses to
        # connect and to send, swallows a cancellation that lands as its inner call finishes,
        # and the listener would then go on listening (and close() wait for it) for ever.
        while task is not None and not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=0.1)
        if task is not None and not task.cancelled():
            task.exception()  # retrieved: the loop ended with it, nothing else to do
        await self._pool.disconnect()

    async def _listen(self) -> None:
        client = aioredis.Redis(connection_pool=self._pool)
        delay, deaf = 0.05, False
        while True:  # until close() cancels the task; every pass blocks or sleeps
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if deaf:  # what was published meanwhile is lost: let everyone look
                    self.wake(list(self._waiters))
                delay, deaf = 0.05, False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self.wake([text(message["data"])])
            except (rex.ConnectionError, rex.TimeoutError, OSError):
                self.wake(list(self._waiters))  # so that nobody sleeps through an outage
                deaf = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            finally:
                await pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py


def scrub(message: str, secret: str | None) -> str:
    """Belt and braces: no driver message may carry the password, raw or percent-decoded."""
    if secret:
        for form in (secret, unquote(secret)):
            message = message.replace(form, "***")
    return message


# -- codec -----------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(moment: datetime) -> int:
    """Integer microseconds since the epoch: exact, and below 2**53 for Lua's doubles."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(microseconds=1)


def span(seconds: float) -> int:
    return max(0, round(seconds * 1_000_000))


@functools.lru_cache(maxsize=4096)
def at(us: int) -> datetime:
    """A moment from its microseconds; cached, as the tasks of a batch share their times
    (pushed together, claimed together)."""
    return EPOCH + timedelta(microseconds=us)


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def lease_args(leases: Iterable[Lease]) -> list[Arg]:
    return [part for lease in leases for part in (lease.task_id, lease.token, lease.attempt)]


def token_args(leases: Iterable[Lease]) -> list[Arg]:
    """Leases as ack.lua takes them: each token once, with the ids of its tasks."""
    ids: dict[str, list[str]] = {}
    for lease in leases:
        ids.setdefault(lease.token, []).append(lease.task_id)
    args: list[Arg] = []
    for token, group in ids.items():
        args += [token, len(group), *group]
    return args


FIELDS = (
    "id", "queue", "name", "status", "priority", "run_at", "attempts", "max_attempts",
    "created_at", "updated_at", "idempotency_key", "metadata", "last_error",
    "lease_expirations", "worker_id", "finished_at", "token",
)  # fmt: skip
"""The fields scripts export, in the order of FIELDS in lib.lua."""

_TOKEN = FIELDS.index("token")
_STATUSES = {status.value: status for status in TaskStatus}


def exported(reply: Sequence[bytes]) -> list[tuple[Task, str]]:
    """Tasks as scripts export them (see ``exported`` in lib.lua), each with its lease token
    ("" for none): one JSON array of the FIELDS of every task (false where the hash has no
    such field), then the payloads."""
    if not reply:
        return []
    rows = json.loads(reply[0])
    return [
        (row_task(row, payload), str(row[_TOKEN] or ""))
        for row, payload in zip(rows, reply[1:], strict=True)
    ]


def stored(raw: dict[bytes, bytes]) -> Task:
    """A task from its hash, read with HGETALL."""
    fields = {k.decode(): v.decode() for k, v in raw.items() if k != b"payload"}
    return row_task([fields.get(name, False) for name in FIELDS], raw[b"payload"])


def row_task(row: Sequence[str | bool], payload: bytes) -> Task:
    """A task from the values of FIELDS, in order; ``False`` for a field the hash lacks."""
    (
        task_id, queue, name, status, priority, run_at, attempts, max_attempts, created_at,
        updated_at, key, metadata, last_error, expirations, worker_id, finished_at, _,
    ) = row  # fmt: skip
    return Task(
        id=str(task_id), queue=str(queue), name=str(name), payload=payload,
        status=_STATUSES[str(status)], priority=int(priority), run_at=at(int(run_at)),
        attempts=int(attempts), max_attempts=int(max_attempts),
        created_at=at(int(created_at)), updated_at=at(int(updated_at)),
        idempotency_key=None if key is False else str(key),
        metadata=json.loads(metadata) if isinstance(metadata, str) else {},
        last_error=None if last_error is False else str(last_error),
        lease_expirations=int(expirations),
        worker_id=None if worker_id is False else str(worker_id),
        finished_at=None if finished_at is False else at(int(finished_at)),
    )  # fmt: skip


def stats(queue: str, reply: Sequence[int]) -> QueueStats:
    """A stats.lua reply: ready, scheduled, running, dead, oldest run_at, now, total."""
    ready, scheduled, running, dead, oldest, now, _ = reply
    age = None if oldest < 0 else max(0.0, (now - oldest) / 1_000_000)
    return QueueStats(queue, ready, scheduled, running, dead, oldest_ready_age=age)
