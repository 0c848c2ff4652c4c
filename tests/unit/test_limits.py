"""Limits as pure rules (rates, buckets, the claim's admission, the held-back figure), their
declaration in the app, and a worker's own rate limit on the in-memory backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from shoal import App, WorkerSettings
from shoal.app.limits import LimitSpec, claim_cap, recheck_interval
from shoal.backends.shared.limiting import Bucket, Candidate, admit, held_back
from shoal.core.errors import ConfigurationError, PayloadInvalid
from shoal.core.limits import NO_LIMITS, Rate, TaskLimits, TokenBucket
from shoal.worker import Worker


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [("100/s", 100, 1.0), ("5/minute", 5, 60.0), (" 30 / m ", 30, 60.0), ("1000/H", 1000, 3600.0)],
)
def test_rates_parse(text: str, count: int, period: float) -> None:
    assert Rate.parse(text) == Rate(count, period)


@pytest.mark.parametrize("text", ["100", "0/s", "-1/s", "10/day", "ten/s", "1.5/s", ""])
def test_bad_rates_say_what_a_rate_looks_like(text: str) -> None:
    with pytest.raises(ConfigurationError, match="COUNT/UNIT"):
        Rate.parse(text)


def test_a_bucket_holds_a_twentieth_of_the_count_and_refills_at_the_rate() -> None:
    rate = Rate(100, 1.0)
    assert (rate.burst, Rate(5, 60.0).burst, Rate(39, 1.0).burst) == (5, 1, 1)
    assert rate.refilled(0.0, 0.05) == pytest.approx(5.0)
    assert rate.refilled(3.0, 60.0) == 5.0  # never more than the burst
    assert rate.refilled(3.0, -1.0) == 3.0  # a clock read before the last draw adds nothing
    assert str(rate) == "100/s" and str(Rate(30, 60.0)) == "30/m"


def test_a_rate_never_lets_a_window_of_claims_see_more_than_105_percent() -> None:
    """Claims every millisecond for ten seconds: no one-second window above 105 of 100/s."""
    rate = Rate(100, 1.0)
    bucket = TokenBucket(rate, 0.0)
    starts: list[float] = []
    for ms in range(10_000):
        now = ms / 1000
        taken = bucket.available(now)
        bucket.take(taken, now)
        starts += [now] * taken
    windows = [sum(1 for s in starts if w / 10 <= s < w / 10 + 1) for w in range(91)]
    assert max(windows) <= 105
    assert len(starts) >= 1000


def test_token_bucket_waits_for_its_next_token() -> None:
    bucket = TokenBucket(Rate(10, 1.0), 0.0)  # one token, back every 0.1 s
    assert bucket.available(0.0) == 1
    bucket.take(1, 0.0)
    assert bucket.available(0.05) == 0
    assert bucket.wait(0.05) == pytest.approx(0.05)
    assert bucket.available(0.1) == 1


def test_task_limits_refuse_halves() -> None:
    with pytest.raises(ConfigurationError, match="rate key needs a rate"):
        TaskLimits(rate_key="task:x")
    with pytest.raises(ConfigurationError, match="concurrency key needs a limit"):
        TaskLimits(concurrency_key="a")
    with pytest.raises(ConfigurationError, match="at least 1"):
        TaskLimits(concurrency_key="a", concurrency_limit=0)
    limits = TaskLimits("queue", Rate(5, 60.0), "a", 2)
    assert TaskLimits.from_columns(*limits.columns()) == limits
    assert TaskLimits.from_columns(None, None, None, None, None) is NO_LIMITS


def limited(task_id: str, *, rate: Rate | None = None, key: str | None = None) -> Candidate:
    limits = TaskLimits("r" if rate else None, rate, key, 1 if key else None)
    return Candidate(task_id, "q", limits)


def test_admission_takes_free_tasks_and_what_limits_allow_in_order() -> None:
    slow = Rate(40, 3600.0)  # two tokens
    candidates = [
        limited("r1", rate=slow),
        limited("k1", key="a"),
        limited("r2", rate=slow),
        limited("k2", key="a"),
        Candidate("f1", "q", NO_LIMITS),
        limited("r3", rate=slow),
        limited("k3", key="b"),
    ]
    chosen = admit(candidates, 10, {}, {("q", "b"): 1}, now=100.0)
    assert chosen.ids == ["r1", "k1", "r2", "f1"]
    assert chosen.buckets == {("q", "r"): Bucket(0.0, 100.0)}
    assert admit(candidates, 2, {}, {}, now=100.0).ids == ["r1", "k1"]


def test_admission_refills_stored_buckets_and_never_dates_them_back() -> None:
    rate = Rate(40, 1.0)  # two tokens, one back every 25 ms
    stored = {("q", "r"): Bucket(0.0, 10.0)}
    chosen = admit([limited(f"t{i}", rate=rate) for i in range(5)], 5, stored, {}, now=10.03)
    assert chosen.ids == ["t0"]
    later = {("q", "r"): Bucket(0.5, 11.0)}  # drawn from by a claim whose clock read later
    again = admit([limited("t", rate=rate)], 5, later, {}, now=10.9)
    assert again.ids == [] and again.buckets[("q", "r")].at == 11.0


def test_held_back_counts_what_the_limits_would_not_let_start() -> None:
    groups = [
        ("q", TaskLimits("r", Rate(60, 3600.0)), 7),  # 3 tokens: 4 held
        ("q", TaskLimits(None, None, "a", 2), 5),  # 1 running: 1 slot, 4 held
        ("p", TaskLimits(None, None, "a", 2), 1),  # another queue's key "a": free
    ]
    held = held_back(groups, {}, {("q", "a"): 1}, now=0.0)
    assert held == {"q": 8, "p": 0}


async def test_pushes_by_name_are_stamped_too() -> None:
    """A push by name gets the limits of the queue it goes to: a registered task's own and
    that queue's rate, an unknown name that queue's rate only."""
    app = App("memory://")
    app.limit_queue("bulk", "600/m")

    @app.task(queue="fast", concurrency_key="{region}", concurrency_limit=1)
    async def export(region: str) -> None: ...

    async with app:
        moved = await app.backend.get(
            (await app.push_by_name(export.name, {"region": "eu"}, queue="bulk")).id
        )
        own = await app.backend.get((await app.push_by_name(export.name, {"region": "us"})).id)
        unknown = await app.backend.get(
            (await app.push_by_name("elsewhere.task", {}, queue="bulk")).id
        )
        plain = await app.backend.get((await app.push_by_name("elsewhere.task", {}, queue="q")).id)
    assert moved is not None and own is not None and unknown is not None and plain is not None
    assert (moved.queue, moved.limits) == ("bulk", TaskLimits("queue", Rate(600, 60.0), "eu", 1))
    assert (own.queue, own.limits) == ("fast", TaskLimits(None, None, "us", 1))
    assert unknown.limits == TaskLimits("queue", Rate(600, 60.0))
    assert plain.limits == NO_LIMITS


async def test_tasks_stamp_their_limits_at_push() -> None:
    app = App("memory://")
    app.limit_queue("bulk", "600/m")

    @app.task(rate_limit="100/s", concurrency_key="{customer_id}", concurrency_limit=2)
    async def charge(customer_id: int, cents: int) -> None: ...

    @app.task(queue="bulk", concurrency_key=lambda region, **_: region, concurrency_limit=1)
    async def export(region: str | None = None) -> None: ...

    @app.task
    async def plain() -> None: ...

    async with app:
        first = await app.backend.get((await charge.push(7, cents=100)).id)
        second = await app.backend.get((await export.push(region="eu")).id)
        third = await app.backend.get((await export.push()).id)
        fourth = await app.backend.get((await plain.push()).id)
    assert first is not None and second is not None and third is not None and fourth is not None
    assert first.limits == TaskLimits(f"task:{charge.name}", Rate(100, 1.0), "7", 2)
    assert second.limits == TaskLimits("queue", Rate(600, 60.0), "eu", 1)
    assert third.limits == TaskLimits("queue", Rate(600, 60.0))  # no key: only the queue's rate
    assert fourth.limits is NO_LIMITS


def test_a_key_that_cannot_be_computed_is_a_payload_error() -> None:
    spec = LimitSpec.declare(None, "{customer}", 2)
    with pytest.raises(PayloadInvalid, match="concurrency key"):
        spec.stamp("charge", None, {"customer_id": 1})


def test_declarations_refuse_what_cannot_hold() -> None:
    app = App("memory://")
    with pytest.raises(ConfigurationError, match="together"):
        app.task(concurrency_key="{a}")
    with pytest.raises(ConfigurationError, match="COUNT/UNIT"):
        app.task(rate_limit="fast")

    @app.task(queue="q", rate_limit="10/s")
    async def own() -> None: ...

    with pytest.raises(ConfigurationError, match="has its own"):
        app.limit_queue("q", "5/s")
    app.limit_queue("r", "5/s")
    with pytest.raises(ConfigurationError, match="its queue 'r' has one"):

        @app.task(queue="r", rate_limit="1/s")
        async def clash() -> None: ...


def test_workers_look_again_at_the_shortest_rate_of_their_queues() -> None:
    specs = [("a", LimitSpec(Rate(100, 1.0))), ("b", LimitSpec(Rate(10, 1.0))), ("c", LimitSpec())]
    assert recheck_interval(specs, {}, ["a", "c"]) == pytest.approx(0.025)
    assert recheck_interval(specs, {"c": Rate(60, 60.0)}, ["c"]) == pytest.approx(1.5)
    assert recheck_interval(specs, {}, ["c"]) is None


def test_a_worker_rate_limit_must_parse() -> None:
    assert WorkerSettings(rate_limit="50/second").rate_limit == "50/s"
    with pytest.raises(ConfigurationError, match="COUNT/UNIT"):
        WorkerSettings(rate_limit="lots")


async def test_a_worker_starts_no_more_than_its_own_rate() -> None:
    app = App("memory://")
    starts: list[float] = []

    @app.task
    async def tick() -> None:
        starts.append(time.monotonic())

    async with app:
        await tick.push_many([{}] * 6)
        worker = Worker(app, WorkerSettings(rate_limit="10/s", poll_interval=0.05))
        run = asyncio.create_task(worker.run())
        async with asyncio.timeout(30):
            while worker.processed < 6:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        worker.stop()
        await run
        stats = (await app.backend.stats(["default"]))["default"]
    # One token at a time, one back every 0.1 s: six starts span at least half a second.
    assert starts[-1] - starts[0] >= 0.45
    assert (stats.ready, stats.running) == (0, 0)


def test_a_claim_asks_no_more_than_full_buckets_hold_when_every_task_is_rate_limited() -> None:
    specs = [("a", LimitSpec(Rate(100, 1.0))), ("a", LimitSpec(Rate(40, 1.0))), ("b", LimitSpec())]
    assert claim_cap(specs, {}, ["a"]) == 5 + 2
    assert claim_cap(specs, {"b": Rate(200, 1.0)}, ["a", "b"]) == 7 + 10
    assert claim_cap(specs, {}, ["a", "b"]) is None  # b's task has no rate
    assert claim_cap(specs, {}, ["c"]) is None  # nothing known of c


def test_a_worker_under_rate_limits_claims_again_at_their_pace() -> None:
    from shoal.worker.limits import WorkerLimits

    app = App("memory://")

    @app.task(queue="paced", rate_limit="100/s")
    async def paced() -> None: ...

    limits = WorkerLimits(app, ["paced"], None, now=0.0)
    assert limits.claimable(550, 0, now=0.0) == 5  # what a full bucket holds
    assert limits.claimed(5, 5, now=0.0) is False and limits.may_claim(0.0)
    assert limits.claimed(2, 5, now=1.0) is True  # short: the limit may be holding work
    assert not limits.may_claim(1.01) and limits.due(1.01) == [pytest.approx(1.025)]
    assert limits.may_claim(1.025) and limits.due(1.03) == []
    free = WorkerLimits(App("memory://"), ["default"], "10/s", now=0.0)
    assert free.claimed(0, 5, now=0.0) is False  # no rate on its queues: the usual wait
    assert free.claimable(50, 0, now=0.0) == 1 and free.startable(50, now=0.0) == 1
    free.started(1, now=0.0)
    assert free.claimable(50, 0, now=0.05) == 0 and free.due(0.05) == [pytest.approx(0.1)]
