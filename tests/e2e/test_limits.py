"""Limits across worker processes: a concurrency key's limit and a rate limit hold for all
the workers together, judged from the start and end records the handlers write.

Matrix: every backend in ``tests.e2e.conftest.BACKENDS`` (SQLite, PostgreSQL, Redis),
through the parametrised ``workers`` fixture. ``bench/limits.py`` measures the same on
PostgreSQL and Redis over 30 s and reports the rate; here the bounds are looser.
"""

from __future__ import annotations

import collections

from tests.e2e.conftest import Workers, push, wait_for


def serving(workers: Workers, count: int, *flags: str) -> None:
    """Start ``count`` workers and wait until all serve: the first one up would otherwise
    run everything before the others have imported shoal."""
    started = [workers.start(*flags) for _ in range(count)]
    wait_for(
        lambda: all("serving" in workers.output(p) for p in started), 60, "the workers to serve"
    )


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one moment (an end at the moment of a start closes first)."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = peak = 0
    for _, change in edges:
        running += change
        peak = max(peak, running)
    return peak


def test_a_key_limited_to_two_never_runs_three_times_under_eight_workers(
    workers: Workers,
) -> None:
    serving(workers, 8, "--queues", "e2e-keyed", "--concurrency", "4")
    keys = ["alpha", "beta", "gamma"]
    calls = [{"key": key, "seconds": 0.2} for key in keys for _ in range(12)]
    ids = push(workers.url, calls, task="keyed")  # type: ignore[arg-type]
    key_of = dict(zip(ids, (call["key"] for call in calls), strict=True))
    wait_for(lambda: len(workers.count("end")) == len(ids), 120, "every keyed task to end")
    times: dict[str, dict[str, float]] = collections.defaultdict(dict)
    for event, task_id, _, _, when in workers.events():
        times[task_id][event] = when
    spans = collections.defaultdict(list)
    for task_id, seen in times.items():
        spans[key_of[task_id]].append((seen["start"], seen["end"]))
    peaks = {key: most_at_once(found) for key, found in spans.items()}
    assert max(peaks.values()) <= 2, peaks
    assert 2 in peaks.values(), peaks  # the limit was reached, so it was what held
    assert len({pid for *_, pid, _ in workers.events()}) > 1  # more than one worker ran them


def test_a_rate_of_100_per_second_holds_for_four_workers_together(workers: Workers) -> None:
    serving(workers, 4, "--queues", "e2e-paced", "--concurrency", "50")
    ids = push(workers.url, [{}] * 400, task="paced")
    wait_for(lambda: len(workers.count("start")) == len(ids), 120, "every paced task to start")
    starts = sorted(when for event, *_, when in workers.events() if event == "start")
    windows = [sum(1 for s in starts[i:] if s < first + 1.0) for i, first in enumerate(starts)]
    assert max(windows) <= 110, max(windows)
    rate = (len(starts) - 1) / (starts[-1] - starts[0])
    assert 40 <= rate <= 110, rate  # a loose floor: the machine is shared; bench/limits.py measures
