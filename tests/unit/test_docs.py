"""The README's configuration table lists every worker setting with its environment twin,
and the defaults it states are the fields' own."""

from __future__ import annotations

from pathlib import Path

from shoal import WorkerSettings
from shoal.core.settings import Shown

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_worker_setting_is_in_the_readme_table() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `--")]
    for name, spec in WorkerSettings.model_fields.items():
        flag = f"`{WorkerSettings.flag_name(name)}`"
        variable = f"`{WorkerSettings.env_name(name)}`"
        [row] = [row for row in rows if flag in row and variable in row]
        stated = row.split("|")[3].strip()
        if isinstance(spec.default, bool):  # before int: a bool is an int
            assert stated == str(spec.default).lower(), flag
        elif isinstance(spec.default, int | float):
            assert float(stated) == spec.default, flag
        elif spec.default is None and stated in ("none", "automatic"):
            shown = [m.text for m in spec.metadata if isinstance(m, Shown)]
            assert stated == (shown[0] if shown else "none"), flag
