"""``shoal schedules`` and ``shoal migrate --app`` on a SQLite file, through ``main``."""

from __future__ import annotations

import pytest

from shoal.cli import main

APP = "tests.e2e.periodic_app:missed"


def test_migrate_registers_then_list_pause_resume_trigger(
    sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["migrate", "--app", APP, "--backend-url", sqlite_url]) == 0
    assert "3 schedules of app 'e2e-missed' active, 0 not" in capsys.readouterr().out
    base = ["schedules", "--backend-url", sqlite_url]

    assert main(base) == 0
    listing = capsys.readouterr().out
    for policy in ("skip", "latest", "all"):
        assert f"missed-{policy}" in listing
    assert "every 10s" in listing and "UTC" in listing and "active" in listing

    assert main([*base[:1], "pause", "missed-skip", *base[1:]]) == 0
    assert "missed-skip paused" in capsys.readouterr().out
    assert main([*base[:1], "pause", "ghost", *base[1:]]) == 2
    assert "no schedule is named 'ghost'" in capsys.readouterr().err

    resume = [*base[:1], "resume", "missed-skip", *base[1:], "--app", APP]
    assert main(resume) == 0
    assert "missed-skip active, next tick 20" in capsys.readouterr().out

    trigger = [*base[:1], "trigger", "missed-all", *base[1:], "--app", APP]
    assert main(trigger) == 0
    assert "missed-all triggered: task " in capsys.readouterr().out

    assert main([*base[:1], "resume", "missed-all", *base[1:]]) == 2
    assert "--app" in capsys.readouterr().err
    assert main([*base[:1], "pause", *base[1:]]) == 2
    assert "name the schedule: shoal schedules pause NAME" in capsys.readouterr().err
