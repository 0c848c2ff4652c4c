"""The pure bucketing of finishes (shoal.core.throughput)."""

from __future__ import annotations

from shoal.core.models import TaskStatus, from_epoch
from shoal.core.throughput import Window, tally, tally_times


def test_window_ends_with_the_minute_of_now() -> None:
    window = Window.ending(3600 * 10 + 61.5)
    assert window.end == 3600 * 10 + 120 and window.start == window.end - 3600
    assert window.index(window.start) == 0
    assert window.index(window.end - 0.001) == 59
    assert window.index(window.end) is None and window.index(window.start - 1) is None


def test_tally_adds_rows_and_ignores_strays() -> None:
    window = Window(0.0, 3)
    rows = [("done", 0, 2), ("done", 0, 1), ("dead", 2, 4), ("cancelled", 1, 9), ("done", 3, 5)]
    counts = tally("q", window, rows)
    assert counts.done == (3, 0, 0) and counts.dead == (0, 0, 4)
    assert counts.to_json()["done"] == [3, 0, 0]


def test_tally_times_buckets_by_finish_time() -> None:
    window = Window(600.0, 2)
    finishes = [
        (TaskStatus.DONE, from_epoch(600.0)),
        (TaskStatus.DEAD, from_epoch(719.9)),
        (TaskStatus.DONE, from_epoch(720.0)),  # past the window
    ]
    counts = tally_times("q", window, finishes)
    assert counts.done == (1, 0) and counts.dead == (0, 1)
