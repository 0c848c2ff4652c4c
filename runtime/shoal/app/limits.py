"""A task's declared limits, and the :class:`TaskLimits` they stamp on each push.

``@app.task(rate_limit="100/s")`` limits one task; ``app.limit_queue("emails", "100/s")``
every task of a queue (a task of a rate-limited queue cannot have a rate of its own: one
bucket per task, so no limit hides another). ``concurrency_key`` is a function of the task's
arguments (``lambda customer_id, **_: customer_id``) or a template of them
(``"{customer_id}"``); with ``concurrency_limit=N`` at most N tasks of the queue with the same
key run at once, across all workers. The key is computed at push from the validated
arguments and stored with the task, so the claim only compares strings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shoal.core.errors import ConfigurationError, PayloadInvalid
from shoal.core.limits import NO_LIMITS, Rate, TaskLimits

ConcurrencyKey = Callable[..., object] | str
"""A function called with the task's arguments as keywords, or a ``str.format`` template of
them; either yields the key (``None`` from the function: no limit for that call)."""

QUEUE_RATE_KEY = "queue"
"""The bucket every task of a rate-limited queue draws from."""


@dataclass(frozen=True, slots=True)
class LimitSpec:
    """What ``@app.task(...)`` declared; :meth:`stamp` makes one push's :class:`TaskLimits`."""

    rate: Rate | None = None
    concurrency_key: ConcurrencyKey | None = None
    concurrency_limit: int | None = None

    @classmethod
    def declare(
        cls,
        rate_limit: str | Rate | None,
        concurrency_key: ConcurrencyKey | None,
        concurrency_limit: int | None,
    ) -> LimitSpec:
        if (concurrency_key is None) != (concurrency_limit is None):
            raise ConfigurationError(
                "give concurrency_key and concurrency_limit together: the key says which "
                "tasks share a limit, the limit how many of them may run at once"
            )
        if concurrency_limit is not None and concurrency_limit < 1:
            raise ConfigurationError("concurrency_limit must be at least 1")
        rate = None if rate_limit is None else Rate.parse(rate_limit)
        return cls(rate, concurrency_key, concurrency_limit)

    @property
    def needs_arguments(self) -> bool:
        return self.concurrency_key is not None

    def stamp(self, task: str, queue_rate: Rate | None, arguments: Mapping[str, Any]) -> TaskLimits:
        """The limits of one call of ``task`` (``arguments``: validated, defaults filled)."""
        rate_key, rate = None, None
        if self.rate is not None:
            rate_key, rate = f"task:{task}", self.rate
        elif queue_rate is not None:
            rate_key, rate = QUEUE_RATE_KEY, queue_rate
        key = None if self.concurrency_key is None else self._key(task, arguments)
        if rate is None and key is None:
            return NO_LIMITS
        return TaskLimits(rate_key, rate, key, None if key is None else self.concurrency_limit)

    def _key(self, task: str, arguments: Mapping[str, Any]) -> str | None:
        try:
            if isinstance(self.concurrency_key, str):
                return self.concurrency_key.format(**arguments)
            assert self.concurrency_key is not None
            key = self.concurrency_key(**arguments)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise PayloadInvalid(
                f"{task}: cannot compute its concurrency key from the arguments: {exc!r}"
            ) from exc
        return None if key is None else str(key)


NO_SPEC = LimitSpec()


def check_queue_rate(queue: str, tasks: Mapping[str, tuple[str, LimitSpec]]) -> None:
    """Refuse a queue rate over a task with a rate of its own (``tasks``: name → queue, spec)."""
    own = sorted(name for name, (q, spec) in tasks.items() if q == queue and spec.rate)
    if own:
        raise ConfigurationError(
            f"queue {queue!r} cannot have a rate limit: task {own[0]} in it has its own; "
            "a task draws from one bucket, so drop one of the two"
        )


def recheck_interval(
    tasks: Iterable[tuple[str, LimitSpec]], queue_rates: Mapping[str, Rate], queues: Iterable[str]
) -> float | None:
    """How often a worker of ``queues`` claims again while rate limits may hold work back:
    the shortest :attr:`Rate.recheck_interval` of the rates on them (None: no rate limits).
    A bucket refills without a wake-up, so a worker that found nothing must look again."""
    served = set(queues)
    rates = [spec.rate for queue, spec in tasks if queue in served and spec.rate is not None]
    rates += [rate for queue, rate in queue_rates.items() if queue in served]
    return min((rate.recheck_interval for rate in rates), default=None)


def claim_cap(
    tasks: Iterable[tuple[str, LimitSpec]], queue_rates: Mapping[str, Rate], queues: Iterable[str]
) -> int | None:
    """The most one claim of ``queues`` can bring when every task on them is rate-limited:
    what their buckets hold when full (None when some task runs without a rate). Asking for
    more only makes the backend read further past the tasks its limits hold back."""
    specs = list(tasks)
    cap = 0
    for queue in set(queues):
        if queue in queue_rates:
            cap += queue_rates[queue].burst
            continue
        rates = [spec.rate for q, spec in specs if q == queue]
        if not rates or any(rate is None for rate in rates):
            return None
        cap += sum(rate.burst for rate in rates if rate is not None)
    return cap
