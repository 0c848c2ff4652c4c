"""Payload codecs: arguments checked against type hints at push and before running."""

from __future__ import annotations

from datetime import datetime

import pydantic
import pytest

from shoal.app.payloads import PayloadCodec
from shoal.core.context import Context
from shoal.core.errors import PayloadInvalid, PayloadUndecodable


class Address(pydantic.BaseModel):
    street: str
    number: int


def handler(context: Context, to: str, when: datetime, address: Address, tries: int = 1) -> None:
    """A handler with rich types and a context."""


codec = PayloadCodec(handler)


def test_round_trip_keeps_types_and_leaves_the_context_out() -> None:
    payload = codec.encode(
        ("a@b.c",), {"when": "2026-01-02T03:04:05Z", "address": {"street": "x", "number": 3}}
    )
    assert b"context" not in payload
    decoded = codec.decode(payload)
    assert decoded["to"] == "a@b.c"
    assert decoded["when"] == datetime.fromisoformat("2026-01-02T03:04:05+00:00")
    assert decoded["address"] == Address(street="x", number=3)
    assert decoded["tries"] == 1
    assert codec.context_parameter == "context"


def test_push_errors_name_the_field() -> None:
    with pytest.raises(PayloadInvalid) as caught:
        codec.encode((), {"to": "a", "when": "soon", "address": {"street": "x"}})
    message = str(caught.value)
    assert "field 'when'" in message
    assert "field 'address.number': Field required" in message


def test_unknown_arguments_are_refused() -> None:
    with pytest.raises(PayloadInvalid, match=r"unexpected keyword argument|unexpected field"):
        codec.encode(
            (),
            {
                "to": "a",
                "when": "2026-01-02T03:04:05Z",
                "address": {"street": "x", "number": 1},
                "cc": "d",
            },
        )


def test_stored_bytes_that_are_not_json_are_undecodable() -> None:
    with pytest.raises(PayloadUndecodable, match="not valid JSON"):
        codec.decode(b"\x80\x81 not json")


def test_stored_json_that_no_longer_fits_is_invalid() -> None:
    with pytest.raises(PayloadInvalid, match="field 'to'"):
        codec.decode(
            b'{"to": 5, "when": "2026-01-02T03:04:05Z", "address": {"street": "x", "number": 1}}'
        )


def test_star_arguments_cannot_be_stored() -> None:
    def bad(*items: int) -> None: ...

    with pytest.raises(TypeError, match="must be named"):
        PayloadCodec(bad)
