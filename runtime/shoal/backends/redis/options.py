"""Shoal's own query options of a ``redis://`` URL, parsed by pydantic from their types."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from shoal.core.settings import Settings


def _plain_prefix(value: str) -> str:
    if not value or "{" in value or "}" in value:
        raise ValueError("the prefix must be non-empty, without braces")
    return value


class RedisOptions(Settings):
    """Shoal's own query options of a ``redis://`` URL; the others are redis-py's."""

    prefix: Annotated[str, AfterValidator(_plain_prefix)] = "shoal"
    """Part of every key's hash tag: apps and tests that share a server keep apart."""
    reconnect_timeout: float = Field(default=10.0, ge=0)
    """Seconds an operation retries a lost connection before raising BackendUnavailable."""
