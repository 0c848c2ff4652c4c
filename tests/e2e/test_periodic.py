"""Periodic tasks in real worker processes (``shoal worker``) on real servers.

Matrix: the every-second run and the missed-tick policies run on PostgreSQL and Redis at
once, in one test each (their wall time is the point, so the backends share it); the
SIGKILL case runs once per backend of ``tests.e2e.conftest.BACKENDS`` (SQLite, PostgreSQL,
Redis). The apps are in ``tests/e2e/periodic_app.py``; their handlers log each start.
"""

from __future__ import annotations

import collections
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import BACKENDS, ROOT, wait_for


@dataclass
class Fleet:
    """Worker processes of one app on one backend, and what their handlers logged."""

    name: str
    """The backend's name (the URL holds a password: never in a message)."""
    url: str
    app: str
    folder: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def log(self) -> Path:
        return self.folder / "ticks.log"

    def migrate(self) -> None:
        """``shoal migrate --app``: the schema, and the app's schedules with their first tick."""
        subprocess.run(
            [
                sys.executable,
                "-m",
                "shoal",
                "migrate",
                "--app",
                self.app,
                "--backend-url",
                self.url,
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self, *flags: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "SHOAL_BACKEND_URL": self.url,
            "SHOAL_TEST_LOG": str(self.log),
            "SHOAL_REAP_INTERVAL": "0.5",  # the poll interval stays 1 s: ticks are woken for
        }
        output = self.folder / f"worker-{len(self.processes)}.out"
        with output.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "shoal", "worker", self.app, *flags],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def events(self, event: str = "start") -> list[tuple[str, int, int, int, float]]:
        """(schedule, tick epoch, attempt, pid, time) of each line logged for ``event``."""
        if not self.log.exists():
            return []
        text = self.log.read_text()
        rows = []
        for line in text[: text.rfind("\n") + 1].splitlines():
            kind, schedule, tick, attempt, pid, when = line.split()
            if kind == event:
                rows.append((schedule, int(tick), int(attempt), int(pid), float(when)))
        return rows


@pytest.fixture
def fleets() -> Iterator[list[Fleet]]:
    """The fleets a test builds (:func:`fleet_on`); every process is stopped at the end."""
    built: list[Fleet] = []
    yield built
    for fleet in built:
        fleet.stop()


def fleet_on(
    fleets: list[Fleet], request: pytest.FixtureRequest, tmp_path: Path, backend: str, app: str
) -> Fleet:
    url: str = request.getfixturevalue(BACKENDS[backend])
    folder = tmp_path / backend
    folder.mkdir()
    fleet = Fleet(backend, url, app, folder)
    fleets.append(fleet)
    fleet.migrate()
    return fleet


def on_time(fleet: Fleet) -> list[int]:
    """The ticks that started within a second of their moment."""
    return [tick for _, tick, _, _, when in fleet.events() if when - tick < 1.0]


@pytest.mark.timeout(300)
def test_three_workers_run_each_tick_of_an_every_second_schedule_once_on_time(
    fleets: list[Fleet], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    chosen = [
        fleet_on(fleets, request, tmp_path, name, "tests.e2e.periodic_app:seconds")
        for name in ("postgres", "redis")
    ]
    for fleet in chosen:
        for _ in range(3):
            fleet.start("--concurrency", "2")
    wait_for(lambda: all(on_time(f) for f in chosen), timeout=90, what="ticks on time")
    # The window opens once every fleet keeps time: the ticks that came due while the
    # workers started (migrate materialised the first) run late, within their grace.
    first = max(min(on_time(f)) for f in chosen) + 2
    window = range(first, first + 60)
    wait_for(
        lambda: all(any(t >= window[-1] + 2 for _, t, *_ in f.events()) for f in chosen),
        timeout=120,
        what="the 60 s window to pass",
    )
    for fleet in chosen:
        # Three workers competed for every tick all along (the one that ran a tick wakes
        # for the next, so one of them may have won them all).
        assert all(process.poll() is None for process in fleet.processes), fleet.name
        fleet.stop()
        starts = [row for row in fleet.events() if row[1] in window]
        per_tick = collections.Counter(tick for _, tick, *_ in starts)
        assert sorted(per_tick) == list(window), f"{fleet.name}: ticks missing"
        assert max(per_tick.values()) == 1, f"{fleet.name}: a tick ran twice"
        lateness = sorted(when - tick for _, tick, _, _, when in starts)
        p99 = lateness[math.ceil(0.99 * len(lateness)) - 1]
        figures = {
            "backend": fleet.name,
            "ticks": len(starts),
            "lateness_p50": round(lateness[len(lateness) // 2], 3),
            "lateness_p99": round(p99, 3),
        }
        print(json.dumps(figures))
        assert p99 <= 1.0, f"{fleet.name}: lateness p99 {p99:.3f}s"


@pytest.mark.timeout(180)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_tick_whose_worker_is_killed_runs_again_and_later_ticks_go_on(
    fleets: list[Fleet], request: pytest.FixtureRequest, tmp_path: Path, backend: str
) -> None:
    fleet = fleet_on(fleets, request, tmp_path, backend, "tests.e2e.periodic_app:slow")
    doomed = fleet.start("--lease-seconds", "1.5")
    wait_for(lambda: len(fleet.events()) == 1, timeout=60, what="a tick to start")
    [(_, killed, _, _, _)] = fleet.events()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait(10)
    fleet.start("--lease-seconds", "1.5")
    wait_for(
        lambda: {t for _, t, *_ in fleet.events("end")} >= {killed, killed + 4, killed + 8},
        timeout=90,
        what="the killed tick and two later ones to finish",
    )
    starts = collections.Counter(tick for _, tick, *_ in fleet.events())
    assert starts[killed] >= 2  # it ran again after its lease expired
    ends = collections.Counter(tick for _, tick, *_ in fleet.events("end"))
    assert ends[killed] == 1 and ends[killed + 4] == 1 and ends[killed + 8] == 1


DOWNTIME = 300.0
"""Seconds every worker is stopped for in the missed-tick test (the issue's five minutes)."""


@pytest.mark.timeout(600)
def test_after_five_minutes_with_no_worker_each_missed_tick_policy_holds(
    fleets: list[Fleet], request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    chosen = [
        fleet_on(fleets, request, tmp_path, name, "tests.e2e.periodic_app:missed")
        for name in ("postgres", "redis")
    ]
    names = {"missed-skip", "missed-latest", "missed-all"}
    for fleet in chosen:
        fleet.start()
    wait_for(
        lambda: all({s for s, *_ in f.events()} == names for f in chosen),
        timeout=60,
        what="every schedule to run a tick",
    )
    for fleet in chosen:
        fleet.stop()
    stopped = time.time()
    time.sleep(DOWNTIME)  # the point: nothing runs meanwhile
    restarted = time.time()
    for fleet in chosen:
        fleet.start()
    # Every schedule's first tick after the restart has run: the catch-up is over.
    wait_for(
        lambda: all({s for s, t, *_ in f.events() if t > restarted + 1} == names for f in chosen),
        timeout=90,
        what="a tick after the restart on every schedule",
    )
    for fleet in chosen:
        fleet.stop()
        after = [row for row in fleet.events() if row[4] > restarted]
        # The first handler to start after the restart did so right after the first claim,
        # which found the missed ticks and applied the policies.
        resumed = min(when for *_, when in after)
        caught_up = collections.defaultdict(list)
        for schedule, tick, *_ in after:
            if stopped + 1 < tick <= resumed:
                caught_up[schedule].append(tick)
        assert caught_up["missed-skip"] == [], fleet.name
        [latest] = caught_up["missed-latest"]
        assert latest > restarted - 11, fleet.name  # the newest missed tick, not an older one
        newest = caught_up["missed-all"]
        assert len(newest) == 3, fleet.name  # catch_up=3: the newest three, in order
        assert newest == [newest[0], newest[0] + 10, newest[0] + 20], fleet.name
        assert newest[-1] > restarted - 11, fleet.name
