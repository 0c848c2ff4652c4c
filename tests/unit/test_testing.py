"""``shoal.testing``: the contract suite ships with shoal, pytest stays a test-time dependency."""

from __future__ import annotations

import subprocess
import sys

import shoal.testing.contract


def test_importing_shoal_never_imports_pytest() -> None:
    program = (
        "import sys, shoal, shoal.backends, shoal.cli, shoal.testing\n"
        "shoal.backends.open_backend('memory://')\n"
        "assert 'pytest' not in sys.modules, sorted(m for m in sys.modules if 'pytest' in m)\n"
    )
    subprocess.run([sys.executable, "-c", program], check=True)


def test_the_contract_cases_fail_with_their_values() -> None:
    loader = type(shoal.testing.contract.__loader__)
    assert loader.__name__ == "AssertionRewritingHook"
