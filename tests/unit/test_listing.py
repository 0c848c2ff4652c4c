"""A listing's filters and order (backends/shared/listing.py) and the id a time maps to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from shoal.backends.shared.listing import TaskQuery, sql_page
from shoal.core.ids import id_floor, new_id
from shoal.core.models import TaskStatus, utcnow


@given(st.integers(min_value=-5000, max_value=5000))
def test_ids_made_after_a_time_sort_at_or_above_its_floor(offset_ms: int) -> None:
    made = new_id()
    around = utcnow() + timedelta(milliseconds=offset_ms)
    if offset_ms <= -5:  # well before the id was made
        assert made >= id_floor(around)
    if offset_ms >= 5:  # well after
        assert made < id_floor(around)


def test_the_floor_of_the_epoch_and_of_the_far_future() -> None:
    assert id_floor(datetime(1960, 1, 1, tzinfo=UTC)) == "00000000-0000-0000-0000-000000000000"
    assert id_floor(datetime(9999, 1, 1, tzinfo=UTC)) < "ffffffff-ffff-ffff-ffff-ffffffffffff"


def test_until_and_before_bound_the_range_together() -> None:
    now = utcnow()
    before = id_floor(now - timedelta(hours=1))
    query = TaskQuery(until=now, before=before)
    assert query.above == before
    assert TaskQuery(until=now - timedelta(hours=2), before=before).above < before
    assert TaskQuery().above is None and TaskQuery().lowest is None


def test_one_sql_page_names_each_parameter_once() -> None:
    query = TaskQuery(queue="q", statuses=(TaskStatus.DEAD, TaskStatus.DONE), name="n",
                      since=utcnow(), before="x", limit=5)  # fmt: skip
    sql, arguments = sql_page(query, "tasks", lambda n: f"${n}")
    assert sql.count(" UNION ALL ") == 1
    assert arguments.count(5) == 1 and arguments.count("q") == 1  # shared by both branches
    assert "$7" in sql and "$8" not in sql
    plain, only_limit = sql_page(TaskQuery(limit=3), "tasks", lambda n: f"?{n}")
    assert "UNION" not in plain and only_limit == [3]
