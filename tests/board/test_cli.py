"""``shoal board`` as a command: its flags and their SHOAL_* twins, and the error that names
the extra when the board's ASGI stack is not installed."""

from __future__ import annotations

import subprocess
import sys

# Imports starlette as absent, then runs the CLI: what a `pip install shoal` without the
# board extra sees.
WITHOUT_STARLETTE = """
import sys
class Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "starlette":
            raise ImportError("No module named 'starlette'")
sys.meta_path.insert(0, Absent())
from shoal.cli import main
raise SystemExit(main(sys.argv[1:]))
"""


def test_every_board_flag_has_its_environment_twin() -> None:
    help = subprocess.run(
        [sys.executable, "-m", "shoal", "board", "--help"], capture_output=True, timeout=60
    )
    text = " ".join(help.stdout.decode().split())  # argparse wraps lines
    for variable in ("SHOAL_BOARD_HOST", "SHOAL_BOARD_PORT", "SHOAL_BOARD_REFRESH"):
        assert variable in text
    assert "SHOAL_BOARD_ADMIN" in text and "never from flags" in text


def test_without_the_extra_the_error_names_it() -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_STARLETTE, "board", "--backend-url", "memory://"],
        capture_output=True,
        timeout=60,
        env={"SHOAL_BOARD_ADMIN": "ada:pw", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2
    assert "pip install 'shoal[board]'" in done.stderr.decode()
