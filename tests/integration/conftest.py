"""The ``backend_url`` fixture: every built-in backend, a fresh store for each test.

The contract suite (``test_builtin_contract.py``) opens its ``backend`` from it. Add a
backend by naming its URL fixture here (and defining it in tests/servers/).
"""

from __future__ import annotations

import pytest

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
