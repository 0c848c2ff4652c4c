"""The queues page's charts: finishes per minute of the last hour, drawn as escaped SVG,
and ``last_hour`` in /api/queues."""

from __future__ import annotations

import re

import httpx

from shoal.backends import Backend
from shoal.board.charts import finish_chart
from shoal.core.models import Failure
from shoal.core.throughput import FinishCounts, Window, tally
from tests.board.test_board import HOSTILE, task


def test_a_chart_draws_one_bar_per_busy_minute_and_escapes_its_title() -> None:
    counts = tally(HOSTILE, Window(0.0, 4), [("done", 0, 3), ("done", 3, 1), ("dead", 1, 2)])
    svg = str(finish_chart(counts))
    assert svg.count('class="done"') == 2 and svg.count('class="dead"') == 1
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert "4 done, 2 dead in the last hour" in svg
    empty = FinishCounts("q", counts.start, (0, 0), (0, 0))
    assert "<rect" not in str(finish_chart(empty))


async def test_the_queues_page_charts_the_last_hour(
    admin: httpx.AsyncClient, backend: Backend
) -> None:
    await backend.push([task("mail") for _ in range(3)])
    first, second, third = await backend.claim(["mail"], "w1", 3, 30)
    await backend.ack([first.lease, second.lease])
    await backend.fail([Failure(third.lease, "fatal", None)])

    [row] = (await admin.get("/api/queues")).json()["queues"]
    last_hour = row["last_hour"]
    assert len(last_hour["done"]) == len(last_hour["dead"]) == 60
    assert (sum(last_hour["done"]), sum(last_hour["dead"])) == (2, 1)
    assert last_hour["minute_seconds"] == 60

    html = (await admin.get("/")).text
    [chart] = re.findall(r"<svg class=\"chart\".*?</svg>", html)
    assert "mail: 2 done, 1 dead in the last hour" in chart
    assert chart.count('class="done"') >= 1 and chart.count('class="dead"') == 1
