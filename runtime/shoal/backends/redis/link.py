"""One round trip to Redis: commands and Lua scripts, retried and translated.

:class:`Link` sends commands and scripts in one round trip, calls scripts by SHA and loads
them again on ``NOSCRIPT``, retries connection errors with backoff until a deadline, and
translates driver errors into shoal's, the password scrubbed from every message.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar
from urllib.parse import unquote

import redis.asyncio as aioredis
from redis import exceptions as rex

from shoal.backends.redis.codec import Arg
from shoal.backends.shared.tls import REDIS, tls_failure
from shoal.core.errors import BackendError, BackendUnavailable

SCRIPTS = (
    "push", "claim", "ack", "fail", "release", "extend", "reap",
    "stats", "list", "read", "retry", "cancel", "purge", "purge_ids", "workers", "expire",
    "cancelled", "finish_counts", "schedule_advance", "schedule_read", "schedule_store",
    "schedule_state",
)  # fmt: skip

_T = TypeVar("_T")


def _load_lua() -> dict[str, str]:
    # Redis scripts cannot include one another, so lib.lua is prepended to each.
    folder = resources.files("shoal.backends.redis") / "lua"
    lib = (folder / "lib.lua").read_text(encoding="utf-8")
    return {n: f"{lib}\n{(folder / f'{n}.lua').read_text(encoding='utf-8')}" for n in SCRIPTS}


LUA = _load_lua()
SHA = {name: hashlib.sha1(text.encode()).hexdigest() for name, text in LUA.items()}


@dataclass(frozen=True, slots=True)
class Script:
    """One call of a Lua script from ``backends/redis/lua``."""

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
                tls = tls_failure(exc, REDIS)
                if tls is not None:  # nor a certificate that is not trusted
                    raise BackendUnavailable(f"cannot use Redis: {tls}", url=self.url) from exc
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


def scrub(message: str, secret: str | None) -> str:
    """Belt and braces: no driver message may carry the password, raw or percent-decoded."""
    if secret:
        for form in (secret, unquote(secret)):
            message = message.replace(form, "***")
    return message
