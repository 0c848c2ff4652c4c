"""The README's configuration table lists every worker setting with its environment twin."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from shoal import WorkerSettings
from shoal.core.settings import env_name

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_worker_setting_is_in_the_readme_table() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `--")]
    for spec in dataclasses.fields(WorkerSettings):
        flag = f"`--{spec.name.replace('_', '-')}`"
        assert any(flag in row and f"`{env_name(spec.name)}`" in row for row in rows), flag
