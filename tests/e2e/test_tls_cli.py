"""Workers and producers over TLS, through the real CLI in subprocesses.

Matrix: PostgreSQL (``sslmode=verify-full`` with a CA, client certificate and key) and
Redis (``rediss://`` with ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``), both started
with TLS only by the harness: ``shoal migrate``, ``shoal enqueue`` (a producer), a ``shoal
worker`` that runs the task, and ``shoal queues`` refusing an untrusted certificate (exit 3,
one line, the URL redacted).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote_plus, urlencode, urlsplit

import pytest

from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer
from tests.servers.tls import Certificates

from .conftest import Workers, shoal, statuses, wait_for

APP = "tests.e2e.sample_app:app"


@pytest.fixture(params=["postgres", "redis"])
def tls_url(request: pytest.FixtureRequest, tls_certificates: Certificates) -> Iterator[str]:
    if request.param == "redis":
        server: RedisServer = request.getfixturevalue("tls_redis")
        prefix = f"tls-e2e-{uuid.uuid4().hex[:12]}"
        yield server.url(prefix=prefix)
        server.delete_prefix(prefix)
        return
    postgres: PostgresServer = request.getfixturevalue("tls_postgres")
    files = {
        "sslmode": "verify-full",
        "sslrootcert": str(tls_certificates.ca),
        "sslcert": str(tls_certificates.client_cert),
        "sslkey": str(tls_certificates.client_key),
    }
    yield f"{postgres.url(postgres.create_database())}?{urlencode(files)}"


def test_a_producer_and_a_worker_over_tls(tls_url: str, tmp_path: Path) -> None:
    assert shoal("migrate", "--backend-url", tls_url).returncode == 0
    pushed = shoal("enqueue", "tests.e2e.sample_app.work", "--app", APP, "--backend-url", tls_url)
    assert pushed.returncode == 0, pushed.stderr
    task_id = pushed.stdout.split()[-1]
    workers = Workers(tls_url, tmp_path / "events.log")
    try:
        workers.start()
        wait_for(lambda: workers.count("end")[task_id] == 1, 60, "the task to run over TLS")
        wait_for(lambda: statuses(tls_url, [task_id])[task_id][0] == "done", 30, "its ack")
    finally:
        workers.stop_all()


def test_an_untrusted_certificate_is_one_line_and_exit_3(
    tls_url: str, tls_certificates: Certificates
) -> None:
    option = "ssl_ca_certs" if tls_url.startswith("rediss") else "sslrootcert"
    untrusted = tls_url.replace(
        quote_plus(str(tls_certificates.ca)), quote_plus(str(tls_certificates.other_ca))
    )
    assert untrusted != tls_url
    result = shoal("queues", "--backend-url", untrusted)
    assert result.returncode == 3, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "the server's TLS certificate is not trusted" in result.stderr
    assert f"check that {option} names the CA certificate" in result.stderr
    password = urlsplit(tls_url).password
    if password:  # PostgreSQL's URL carries one: shown redacted, never as it is
        assert password not in result.stderr and ":***@" in result.stderr
