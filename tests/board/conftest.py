"""The board's fixtures: a board app over a real backend, and clients signed in as each role.

The backends are the real ones (SQLite file, PostgreSQL, Redis from tests/servers/), so the
pages are rendered from what a backend really returns.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest

from shoal.backends import Backend, open_backend
from shoal.board import BoardSettings, create_app
from shoal.board.auth import Credential, Role

ADMIN = ("ada", "admin-pa55word")
VIEWER = ("vic", "viewer-pa55word")
ADMIN_TOKEN = "admin-token-0123456789"
VIEWER_TOKEN = "viewer-token-0123456789"
CREDENTIALS = (
    Credential(Role.ADMIN, *ADMIN),
    Credential(Role.VIEWER, *VIEWER),
    Credential(Role.ADMIN, None, ADMIN_TOKEN),
    Credential(Role.VIEWER, None, VIEWER_TOKEN),
)
BOARD_URL = "http://board.test"


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def board_backend_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def backend(board_backend_url: str) -> AsyncIterator[Backend]:
    async with open_backend(board_backend_url) as opened:
        await opened.setup()
        yield opened


@pytest.fixture
async def anonymous(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a board over ``backend`` (opened by the fixture: no lifespan here)."""
    settings = BoardSettings(backend_url=backend.url, credentials=CREDENTIALS)
    app = create_app(settings, backend)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BOARD_URL) as client:
        yield client


@pytest.fixture
def admin(anonymous: httpx.AsyncClient) -> httpx.AsyncClient:
    anonymous.headers.update(basic(*ADMIN))
    return anonymous
