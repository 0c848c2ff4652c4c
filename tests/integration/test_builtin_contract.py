"""The backend contract suite (:mod:`shoal.testing.contract`) over every built-in backend.

Matrix: the ``backend`` fixture (``tests/integration/conftest.py``) is parametrised over
memory, SQLite, PostgreSQL and Redis; the servers are real and started by the harness.
"""

from shoal.testing.contract import BackendContract


class TestBuiltInBackends(BackendContract):
    """Every case, once per built-in backend."""
