"""The board's sign-in, roles, CSRF tokens and settings, as pure functions."""

from __future__ import annotations

import base64

import pytest

from shoal.board import BoardSettings, credentials_from
from shoal.board.auth import (
    Credential,
    Role,
    authenticate,
    csrf_token,
    csrf_valid,
    same_origin,
)
from shoal.core.errors import ConfigurationError

CREDENTIALS = (
    Credential(Role.VIEWER, "ada", "look"),
    Credential(Role.ADMIN, "ada", "act"),
    Credential(Role.VIEWER, None, "viewer-token"),
)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_and_bearer_sign_in_with_the_role_they_prove() -> None:
    viewer = authenticate(basic("ada", "look"), CREDENTIALS)
    admin = authenticate(basic("ada", "act"), CREDENTIALS)
    token = authenticate("Bearer viewer-token", CREDENTIALS)
    assert viewer is not None and (viewer.role, viewer.ambient) == (Role.VIEWER, True)
    assert admin is not None and admin.is_admin
    assert token is not None and (token.role, token.ambient) == (Role.VIEWER, False)


@pytest.mark.parametrize(
    "header",
    [None, "", basic("ada", "wrong"), basic("eve", "look"), "Basic !!!", "Bearer nope",
     "Bearer ", "Digest ada", basic("ada", "look:extra")],
)  # fmt: skip
def test_anything_else_is_nobody(header: str | None) -> None:
    assert authenticate(header, CREDENTIALS) is None


def test_a_token_never_signs_in_as_a_user_password() -> None:
    assert authenticate(basic("anyone", "viewer-token"), CREDENTIALS) is None


def test_csrf_tokens_are_per_user_and_per_secret() -> None:
    ada = authenticate(basic("ada", "act"), CREDENTIALS)
    assert ada is not None
    token = csrf_token(b"one", ada)
    assert csrf_valid(b"one", ada, token)
    assert not csrf_valid(b"two", ada, token)
    assert not csrf_valid(b"one", ada, None) and not csrf_valid(b"one", ada, "")
    other = authenticate(basic("ada", "look"), CREDENTIALS)
    assert other is not None and csrf_token(b"one", other) == token  # same user, same form


def test_same_origin() -> None:
    assert same_origin(None, "board:8080") and same_origin("http://board:8080", "board:8080")
    assert not same_origin("https://evil.example", "board:8080")
    assert not same_origin("null", "board:8080")


def test_credentials_come_from_the_environment_and_never_show() -> None:
    found = credentials_from({"SHOAL_BOARD_ADMIN": "ada:s3:cret", "SHOAL_BOARD_VIEWER_TOKEN": "t"})
    assert [(c.role, c.user, c.secret) for c in found] == [
        (Role.ADMIN, "ada", "s3:cret"),
        (Role.VIEWER, None, "t"),
    ]
    assert "s3:cret" not in repr(found)
    with pytest.raises(ConfigurationError, match="SHOAL_BOARD_VIEWER must be user:password"):
        credentials_from({"SHOAL_BOARD_VIEWER": "vic"})


def test_a_board_without_credentials_or_with_slow_pages_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="serves no one anonymously"):
        BoardSettings(backend_url="memory://", credentials=())
    with pytest.raises(ConfigurationError, match="2 s at most"):
        BoardSettings(backend_url="memory://", credentials=CREDENTIALS, refresh_seconds=5)
