"""Backend URLs for the embedded backends: a fresh database for every test."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def memory_url() -> str:
    return "memory://"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'shoal.db'}"
