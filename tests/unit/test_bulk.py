"""Bulk repair's pure parts and its paging, on the in-memory backend: what the flags and a
terminal decide, how times and durations read, and that a selection is every page."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from shoal.backends import open_backend
from shoal.cli import bulk, when
from shoal.core.errors import ConfigurationError
from shoal.core.models import Failure, TaskStatus
from shoal.testing.contract import new_task

Decision = bulk.Decision


@pytest.mark.parametrize(
    ("count", "yes", "dry_run", "interactive", "expected"),
    [
        (0, False, False, False, Decision.NOTHING),
        (0, True, False, True, Decision.NOTHING),
        (5, False, True, False, Decision.COUNT_ONLY),
        (5, True, True, True, Decision.COUNT_ONLY),  # --dry-run wins over --yes
        (5, True, False, False, Decision.GO),
        (5, False, False, True, Decision.ASK),
        (5, False, False, False, Decision.REFUSE),
    ],
)
def test_what_the_flags_and_a_terminal_decide(
    count: int, yes: bool, dry_run: bool, interactive: bool, expected: Decision
) -> None:
    assert bulk.decide(count, yes=yes, dry_run=dry_run, interactive=interactive) is expected


NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2W", 1209600)],
)
def test_durations(text: str, seconds: float) -> None:
    assert when.duration("--older-than", text) == timedelta(seconds=seconds)
    assert when.moment("--since", text, NOW) == NOW - timedelta(seconds=seconds)


def test_times() -> None:
    assert when.moment("--since", "2026-12-01", NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    at = when.moment("--since", "2026-12-01T08:00:00+01:00", NOW)
    assert at == datetime(2026, 12, 1, 7, tzinfo=UTC)


@pytest.mark.parametrize("text", ["soon", "7 days", "-1h", "1y", ""])
def test_bad_durations_and_times_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ConfigurationError, match="--older-than must be a duration such as 90s"):
        when.duration("--older-than", text)
    with pytest.raises(ConfigurationError, match="--since must be an ISO 8601 time"):
        when.moment("--since", text, NOW)


async def test_a_selection_is_every_page_and_the_change_goes_page_by_page(
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with open_backend("memory://") as backend:
        await backend.setup()
        pushed = await backend.push([new_task(max_attempts=1) for _ in range(7)])
        claims = await backend.claim(["default"], "w1", 7, 30)
        await backend.fail([Failure(c.lease, "boom", None) for c in claims])
        await backend.push([new_task()])  # queued: not selected
        selection = bulk.Selection(statuses=(TaskStatus.DEAD,))
        ids = await bulk.matching(backend, selection, page=3, every=0)
        assert ids == sorted(pushed, reverse=True)
        assert capsys.readouterr().err.splitlines() == ["counting: 3 so far", "counting: 6 so far"]
        pages: list[int] = []

        async def retry(page: Sequence[str]) -> int:
            pages.append(len(page))
            return await backend.retry_many(page)

        assert await bulk.apply(ids, retry, "retry", page=3, every=0) == 7
        assert pages == [3, 3, 1]
        assert capsys.readouterr().err.splitlines() == [
            "retry: 3 of 7 (42%)",
            "retry: 6 of 7 (85%)",
        ]
        assert await bulk.matching(backend, selection, page=3) == []
