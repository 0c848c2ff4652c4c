"""``redact`` hides every password a backend URL can carry, and leaves the rest as written."""

from __future__ import annotations

import pytest

from shoal.core.urls import redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/jobs", "postgresql://app:***@db:5432/jobs"),
        ("redis://:s3cret@[::1]:6379/0", "redis://:***@[::1]:6379/0"),
        (
            "postgresql://db/jobs?user=app&password=s3cret&sslmode=require",
            "postgresql://db/jobs?user=app&password=***&sslmode=require",
        ),
        (
            "postgresql://app:s3cret@db/jobs?password=0ther&schema=jobs",
            "postgresql://app:***@db/jobs?password=***&schema=jobs",
        ),
        ("postgresql://db/jobs?password=", "postgresql://db/jobs?password=***"),
        ("postgresql://app@db/jobs?schema=jobs", "postgresql://app@db/jobs?schema=jobs"),
        ("sqlite:///tmp/shoal.db", "sqlite:///tmp/shoal.db"),
        ("postgresql://db/jobs?passwords=kept", "postgresql://db/jobs?passwords=kept"),
    ],
)
def test_passwords_are_masked_wherever_they_are(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_an_unparseable_url_is_not_echoed() -> None:
    assert redact("postgresql://app:s3cret@[::1") == "<unparseable URL>"
