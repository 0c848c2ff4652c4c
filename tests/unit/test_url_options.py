"""A backend URL's query options, parsed from the declared types of PostgreSQL's
``PostgresSettings`` and Redis's ``RedisOptions``: typed values, unknown options refused, bad
values named, and never the password in the error. Parsing connects to nothing."""

from __future__ import annotations

import pytest

from shoal.backends.postgres.connect import PostgresSettings, parse_url
from shoal.backends.redis.backend import from_url
from shoal.core.errors import ConfigurationError

PASSWORD = "hunter2"
POSTGRES = f"postgresql://app:{PASSWORD}@db:5432/jobs"
REDIS = f"redis://:{PASSWORD}@127.0.0.1:6379/0"


def test_postgres_options_are_typed_and_the_rest_is_left_for_asyncpg() -> None:
    dsn, settings, shown, _ = parse_url(
        f"{POSTGRES}?schema=jobs&listen=off&pool_max_size=20&retention=none"
        "&acquire_timeout=2.5&sslmode=require&application_name=billing"
    )
    assert settings == PostgresSettings(
        schema="jobs", listen=False, pool_max_size=20, retention=None, acquire_timeout=2.5
    )
    assert settings.schema == "jobs" and settings.pool_min_size == 2  # a default
    assert dsn == f"{POSTGRES}?sslmode=require&application_name=billing"
    assert PASSWORD not in shown


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("pool_max_size=many", "pool_max_size: input should be a valid integer"),
        ("pool_max_size=0", "pool_max_size: input should be greater than or equal to 1"),
        ("listen=maybe", "listen: input should be a valid boolean"),
        ("schema=Robert');--", "schema: not a plain lower-case PostgreSQL identifier"),
        ("retention=-1", "retention: input should be greater than or equal to 0"),
        ("connect_timeout=0", "connect_timeout: input should be greater than 0"),
        ("pool_max_sise=20", "unknown option 'pool_max_sise' (did you mean pool_max_size?)"),
    ],
)
def test_bad_postgres_options_are_named_without_the_password(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        parse_url(f"{POSTGRES}?{query}")
    assert message in str(caught.value)
    assert PASSWORD not in str(caught.value) and "app:***@db" in str(caught.value)


def test_redis_options_are_typed() -> None:
    backend = from_url(f"{REDIS}?prefix=billing&reconnect_timeout=0.5&socket_timeout=2")
    assert backend.prefix == "billing"
    assert backend.client.connection_pool.connection_kwargs["socket_timeout"] == 2.0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("colour=blue", "unknown option(s) colour"),
        ("prefix={x}", "prefix: the prefix must be non-empty, without braces"),
        ("reconnect_timeout=soon", "reconnect_timeout: input should be a valid number"),
        ("reconnect_timeout=-1", "reconnect_timeout: input should be greater than or equal"),
        ("socket_timeout=abc", "Invalid value for 'socket_timeout'"),  # redis-py's own
    ],
)
def test_bad_redis_options_are_named_without_the_password(query: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        from_url(f"{REDIS}?{query}")
    assert message in str(caught.value)
    assert PASSWORD not in str(caught.value) and ":***@127.0.0.1" in str(caught.value)
