"""What guards the API before any route runs: the token check, the request-size limit, and the
redaction of tokens in the server's log lines.

``Guard`` is a plain ASGI middleware in front of the whole app, so nothing reads a request body
before it: a protected path (``/api/...``, ``/metrics``) without the right bearer token is
answered 401 at once, and a body over ``max_body_bytes`` 413, from ``Content-Length`` or, without
one, as soon as the bytes read pass the limit. The routes keep their own token dependency as well
(and the OpenAPI description shows it).

``TokenRedaction`` is a logging filter for uvicorn's loggers: uvicorn logs every WebSocket
handshake with its query string, and the dashboard's stream URL carries ``?token=`` (right or
wrong). The filter rewrites ``token=...``, ``Bearer ...`` and every registered secret to ``***``
in the message and in a logged traceback.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REDACTED = "***"
_PATTERNS = (
    re.compile(r"(?i)(token=)[^&\s\"'#]+"),
    re.compile(r"(?i)(bearer\s+)[^\s\"',;]+"),
)
LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "fastapi")
"""Loggers whose records may carry a request line or a header."""


class TokenRedaction(logging.Filter):
    """Rewrites tokens in log records to ``***`` (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()

    def add_secret(self, secret: str) -> None:
        if secret:
            self._secrets.add(secret)

    def redact(self, text: str) -> str:
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: leave it to the handler to report
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


REDACTION = TokenRedaction()
"""The one filter every API in this process registers its token with."""


def install_redaction(secret: str) -> None:
    """Register ``secret`` and make sure the filter sits on every logger in ``LOGGERS``."""
    REDACTION.add_secret(secret)
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if REDACTION not in logger.filters:
            logger.addFilter(REDACTION)


class Guard:
    """Auth and size limit for HTTP requests before the app (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        valid: Callable[[str | None], bool],
        protected: Callable[[str], bool],
        max_body_bytes: int,
    ) -> None:
        self.app = app
        self.valid = valid
        self.protected = protected
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if self.protected(scope.get("path", "")) and not self.valid(_bearer(headers)):
            await _answer(
                send,
                401,
                "missing or wrong bearer token",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        declared = headers.get("content-length")
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _answer(send, 400, "invalid Content-Length")
                return
            if length > self.max_body_bytes:
                await _answer(send, 413, f"request body over {self.max_body_bytes} bytes")
                return

        started = answered = False
        read = 0

        async def limited_receive() -> Message:
            nonlocal read, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                read += len(message.get("body", b""))
                if read > self.max_body_bytes and not started:
                    # Answer now; the app sees the client gone, and what it sends is dropped.
                    answered = True
                    await _answer(send, 413, f"request body over {self.max_body_bytes} bytes")
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        await self.app(scope, limited_receive, guarded_send)


def _bearer(headers: dict[str, bytes]) -> str | None:
    value = headers.get("authorization", b"").decode("latin-1")
    scheme, _, credentials = value.partition(" ")
    return credentials.strip() if scheme.lower() == "bearer" and credentials.strip() else None


async def _answer(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
