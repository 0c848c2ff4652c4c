"""OpenTelemetry is optional: ``import shoal`` and a worker's run never import it unless
tracing is enabled, and without the ``otel`` extra ``shoal.tracing`` says what to install.

Each case runs in a fresh interpreter (a module, once imported, stays imported).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

RUN_A_WORKER = """
import asyncio, sys
import shoal
from shoal import App
from shoal.testing import drain

app = App("memory://")
ran = []

@app.task
async def work(n: int) -> None:
    ran.append(n)

async def main() -> None:
    async with app:
        await work.push(n=1)
        await drain(app)

asyncio.run(main())
assert ran == [1], ran
"""

BLOCK_OPENTELEMETRY = """
import importlib.abc, sys

class Absent(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError(f"No module named {name!r} (blocked: the extra is absent)")
        return None

sys.meta_path.insert(0, Absent())
"""


def printed(code: str) -> str:
    """What ``code`` prints in a fresh interpreter, which must exit 0."""
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_import_and_a_worker_run_do_not_import_opentelemetry_unless_enabled() -> None:
    loaded = "sorted(m for m in sys.modules if m.startswith('opentelemetry'))"
    assert printed(RUN_A_WORKER + f"\nprint({loaded})") == "[]"


def test_without_the_extra_shoal_works_and_tracing_names_the_extra() -> None:
    attempt = """
try:
    import shoal.tracing
except shoal.ShoalError as error:
    print(type(error).__name__, error)
"""
    assert printed(BLOCK_OPENTELEMETRY + RUN_A_WORKER + attempt) == (
        "MissingExtra shoal.tracing needs an optional dependency: pip install 'shoal[otel]'"
    )


def test_enabled_tracing_imports_it_then() -> None:
    enable = "\nimport shoal.tracing\nshoal.tracing.instrument(app)"
    assert printed(RUN_A_WORKER + enable + "\nprint('opentelemetry.trace' in sys.modules)") == (
        "True"
    )
