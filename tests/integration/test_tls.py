"""TLS to PostgreSQL and Redis, against servers started with TLS by the harness
(``tests/servers/tls.py`` makes the certificates: a CA, a server certificate for localhost
and 127.0.0.1, a client certificate, and another CA that signed nothing here).

Matrix: PostgreSQL (``sslmode=require``, ``verify-ca``, ``verify-full`` with a CA, client
certificate and key) and Redis (``rediss://`` with ``ssl_ca_certs``, ``ssl_certfile``,
``ssl_keyfile``); on each, a server certificate from an untrusted CA is refused at once
with a typed error that names the backend by its redacted URL and says what to check.
Workers and producers use these URLs through the CLI in ``tests/e2e/test_tls_cli.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlencode

import pytest

from shoal.backends import open_backend
from shoal.core.errors import BackendUnavailable, ConfigurationError
from shoal.testing.contract import new_task
from tests.servers.postgres import PostgresServer
from tests.servers.redis import RedisServer
from tests.servers.tls import Certificates


def postgres_url(server: PostgresServer, tls: Certificates, **options: str) -> str:
    name = server.create_database()
    files = {"sslcert": str(tls.client_cert), "sslkey": str(tls.client_key)}
    return f"{server.url(name)}?{urlencode({**files, **options})}"


async def round_trip(url: str, check: Callable[[], None] = lambda: None) -> None:
    """Migrate, push, claim and ack one task: the whole protocol over the connection;
    ``check`` runs while it is open."""
    async with open_backend(url) as backend:
        await backend.setup()
        [task_id] = await backend.push([new_task()])
        [claim] = await backend.claim(["default"], "w1", 1, 30)
        assert claim.task.id == task_id
        await backend.ack([claim.lease])
        done = await backend.get(task_id)
        assert done is not None and done.status == "done"
        check()


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
async def test_postgres_over_tls(
    tls_postgres: PostgresServer, tls_certificates: Certificates, mode: str
) -> None:
    url = postgres_url(
        tls_postgres, tls_certificates, sslmode=mode, sslrootcert=str(tls_certificates.ca)
    )

    def encrypted_with_the_client_certificate() -> None:
        rows = tls_postgres.psql(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
            "WHERE ssl AND client_dn = '/CN=shoal' AND application_name = 'shoal'"
        )
        assert int(rows) >= 1, rows

    await round_trip(url, encrypted_with_the_client_certificate)


async def test_postgres_refuses_an_untrusted_server_certificate(
    tls_postgres: PostgresServer, tls_certificates: Certificates
) -> None:
    url = postgres_url(
        tls_postgres,
        tls_certificates,
        sslmode="verify-full",
        sslrootcert=str(tls_certificates.other_ca),
    )
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as refused:
        await round_trip(url)
    message = str(refused.value)
    assert "the server's TLS certificate is not trusted" in message
    assert "check that sslrootcert names the CA certificate" in message
    assert f"127.0.0.1:{tls_postgres.port}" in message and "***" in message
    assert tls_postgres.password not in message
    assert time.monotonic() - began < 30


async def test_postgres_without_tls_or_client_certificate_is_refused_by_the_server(
    tls_postgres: PostgresServer, tls_certificates: Certificates
) -> None:
    plain = f"{tls_postgres.url(tls_postgres.create_database())}?sslmode=disable"
    with pytest.raises(BackendUnavailable, match=r"no encryption|reject"):
        await round_trip(plain)


def redis_url(server: RedisServer, prefix: str, **changes: str) -> str:
    url = server.url(prefix=prefix)
    for name, value in changes.items():
        start = url.index(f"{name}=") + len(name) + 1
        end = url.find("&", start)
        url = url[:start] + value + ("" if end < 0 else url[end:])
    return url


async def test_redis_over_tls(tls_redis: RedisServer) -> None:
    url = redis_url(tls_redis, "tls-ok")
    assert url.startswith("rediss://")
    await round_trip(url)
    tls_redis.delete_prefix("tls-ok")


async def test_redis_refuses_an_untrusted_server_certificate_at_once(
    tls_redis: RedisServer, tls_certificates: Certificates
) -> None:
    url = redis_url(tls_redis, "tls-no", ssl_ca_certs=str(tls_certificates.other_ca))
    url += "&reconnect_timeout=60"  # what a connection error would be retried for
    began = time.monotonic()
    with pytest.raises(BackendUnavailable) as refused:
        await round_trip(url)
    message = str(refused.value)
    assert "cannot use Redis: the server's TLS certificate is not trusted" in message
    assert "check that ssl_ca_certs names the CA certificate" in message
    assert f"rediss://127.0.0.1:{tls_redis.port}/0" in message
    assert time.monotonic() - began < 30  # raised at once, not retried for a minute


async def test_redis_tls_options_need_rediss(tls_redis: RedisServer) -> None:
    plain = tls_redis.url(prefix="x").replace("rediss://", "redis://")
    with pytest.raises(
        ConfigurationError,
        match=r"ssl_ca_certs, ssl_certfile, ssl_keyfile configure TLS, which needs a rediss://",
    ):
        open_backend(plain)
