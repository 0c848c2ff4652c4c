"""Settings shared by every tier: a clean environment, and the server fixtures."""

from __future__ import annotations

import os

import pytest

# Each backend's server fixtures live in tests/servers/<backend>.py.
pytest_plugins = [
    "tests.servers.sqlite",
    "tests.servers.tls",
    "tests.servers.redis",
    "tests.servers.postgres",
    "tests.servers.docker",
    "tests.servers.kubernetes_binaries",
    "tests.servers.kubernetes",
]


@pytest.fixture(autouse=True)
def _clean_shoal_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's SHOAL_* variables."""
    for name in list(os.environ):
        if name.startswith("SHOAL_"):
            monkeypatch.delenv(name)
