"""How a failure of an Alpaca call is named: by its kind, never by the request or the body."""

from __future__ import annotations

import json

import pydantic
import pytest
import requests

from flinktrade.execution.brokers.alpaca.answers import describe


class _Order(pydantic.BaseModel):
    id: str
    qty: int


def _validation_error() -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as caught:
        _Order.model_validate({"id": "x"})  # a field missing: JSON, but not an order
    return caught.value


def _json_error() -> json.JSONDecodeError:
    with pytest.raises(json.JSONDecodeError) as caught:
        json.loads("<html>bad gateway</html>")
    return caught.value


def test_a_body_that_is_not_json_is_named_so() -> None:
    assert describe(_json_error()) == "an answer that is not JSON (JSONDecodeError)"
    body = requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0)
    assert describe(body) == "an answer that is not JSON (JSONDecodeError)"
    not_utf8 = UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")
    assert describe(not_utf8) == "an answer that is not JSON (UnicodeDecodeError)"


def test_json_of_another_shape_is_not_called_not_json() -> None:
    described = describe(_validation_error())
    assert described == "an answer of an unexpected shape (ValidationError)"
    assert "qty" not in described  # the kind only, never the fields or values of the answer


def test_timeouts_and_other_failures_are_named_by_their_kind() -> None:
    assert describe(requests.ReadTimeout("secret-url")) == "timeout (ReadTimeout)"
    assert describe(ConnectionResetError("secret")) == "ConnectionResetError"
