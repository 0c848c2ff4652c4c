"""The ``backend`` fixture: every backend, set up fresh for each test.

Add a backend by naming its URL fixture here (and defining it in tests/servers/).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from shoal.backends import Backend, open_backend

BACKEND_URL_FIXTURES = {
    "memory": "memory_url",
    "sqlite": "sqlite_url",
    "postgres": "postgres_url",
    "redis": "redis_url",
}


@pytest.fixture(params=sorted(BACKEND_URL_FIXTURES))
def backend_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(BACKEND_URL_FIXTURES[request.param])
    return url


@pytest.fixture
async def backend(backend_url: str) -> AsyncIterator[Backend]:
    backend = open_backend(backend_url)
    await backend.open()
    await backend.setup()
    try:
        yield backend
    finally:
        await backend.close()
