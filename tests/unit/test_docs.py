"""The README's configuration table lists every worker setting with its environment twin."""

from __future__ import annotations

from pathlib import Path

from shoal import WorkerSettings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_worker_setting_is_in_the_readme_table() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `--")]
    for name in WorkerSettings.model_fields:
        flag = f"`{WorkerSettings.flag_name(name)}`"
        variable = f"`{WorkerSettings.env_name(name)}`"
        assert any(flag in row and variable in row for row in rows), flag
