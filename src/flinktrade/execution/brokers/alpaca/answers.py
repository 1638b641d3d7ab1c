"""Alpaca's error answers read without trusting them, and failures named without secrets.

An ``APIError`` from alpaca-py may carry Alpaca's JSON (``{"code", "message"}``) or a proxy's
HTML page, an empty body, no headers. ``error_answer`` tells them apart (``from_alpaca``) and
keeps a short message; ``describe`` names any other failure by its kind only, never the request
or the response body. The broker maps them to the outcomes of ``brokers/base.py``:

- 429: not processed (``OrderRefused`` for an order that is not waited out, after retries);
- timeout, dropped connection, 5xx, an answer that is not Alpaca's JSON: ``OutcomeUnknown`` for
  an order (resolve by ``client_order_id``), ``TransientError`` for a read;
- 422 ``client_order_id must be unique``: ``OrderExists``;
- any other 4xx: ``OrderRefused``; 404 on a look-up means "no such order" only in Alpaca's JSON;
- a cancel: Alpaca's 404 or 422 ("not cancelable") means nothing is left to cancel; anything
  else that is not a 2xx is a ``TransientError`` (asking again is safe).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import requests
from alpaca.common.exceptions import APIError


@dataclass(frozen=True)
class ErrorAnswer:
    """An HTTP error answer, read without trusting it to be Alpaca's."""

    status: int | None
    message: str
    from_alpaca: bool
    """The body is Alpaca's JSON error (``{"code", "message"}``), not a proxy's page."""


def error_answer(exc: APIError) -> ErrorAnswer:
    response = exc.response
    status = getattr(response, "status_code", None)
    text = str(exc.args[0]) if exc.args else ""
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict) and "message" in data:
        return ErrorAnswer(status, str(data["message"])[:200], True)
    headers = getattr(response, "headers", None) or {}
    kind = str(headers.get("Content-Type") or "no content type").split(";")[0].strip()[:40]
    return ErrorAnswer(status, f"not an Alpaca answer ({kind}, {len(text)} bytes)", False)


def status_of(exc: APIError) -> int | None:
    """The HTTP status of an ``APIError``, if it has a response."""
    return getattr(exc.response, "status_code", None)


def describe(exc: BaseException) -> str:
    """A short, secret-free name for a failure (never the request or the response body)."""
    if isinstance(exc, requests.Timeout):
        return f"timeout ({type(exc).__name__})"
    if isinstance(exc, json.JSONDecodeError | requests.exceptions.JSONDecodeError | UnicodeError):
        return f"an answer that is not JSON ({type(exc).__name__})"
    if isinstance(exc, ValueError):  # e.g. pydantic's ValidationError: JSON, not the shape asked
        return f"an answer of an unexpected shape ({type(exc).__name__})"
    return type(exc).__name__
