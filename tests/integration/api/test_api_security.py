"""The API's guards on the real server: no token in any log line, auth before any body is parsed,
a request-size limit, no secret in any response."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets
from api_helpers import ApiEnv
from fastapi.testclient import TestClient
from pydantic import SecretStr

from flinktrade.api.app import create_app
from flinktrade.api.security import TokenRedaction
from flinktrade.api.settings import ApiSettings
from flinktrade.config import KafkaSettings, Settings

pytestmark = pytest.mark.integration

WRONG = "wrong-token-9f3c1a"


def _stream_url(env: ApiEnv, query: str) -> str:
    return env.server.url.replace("http://", "ws://") + "api/stream?" + query


def test_no_token_reaches_a_log_line(api_env: ApiEnv, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        caplog.set_level(logging.DEBUG, logger=name)

    async def connect() -> None:
        with pytest.raises(websockets.InvalidStatus):
            async with websockets.connect(_stream_url(api_env, f"topics=signals&token={WRONG}")):
                pass
        url = _stream_url(api_env, f"topics=signals&token={api_env.token}")
        async with websockets.connect(url) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "ready"

    asyncio.run(connect())
    with api_env.client() as client:
        client.get(f"/?token={api_env.token}")
        client.get("/api/symbols", headers={"Authorization": f"Bearer {WRONG}"})
        client.get("/api/symbols", headers=api_env.auth)

    server = ("uvicorn", "fastapi", "starlette", "flinktrade")  # httpx/websockets: the clients
    lines = [
        r.getMessage() + (r.exc_text or "")
        for r in caplog.records
        if r.name.split(".")[0] in server
    ]
    stream_lines = [line for line in lines if "WebSocket /api/stream" in line]
    assert len(stream_lines) >= 2, f"the handshakes were not logged: {lines}"  # we saw the log
    assert all("token=***" in line for line in stream_lines)
    assert not [line for line in lines if api_env.token in line or WRONG in line]


def test_redaction_covers_query_strings_headers_secrets_and_tracebacks() -> None:
    redaction = TokenRedaction()
    redaction.add_secret("s3cr3t-value")
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" 403', None, None
    )
    record.args = ("127.0.0.1:5000", "/api/stream?topics=a&token=abc.def-ghi&x=1")
    assert redaction.filter(record)
    assert (
        record.getMessage() == '127.0.0.1:5000 - "WebSocket /api/stream?topics=a&token=***&x=1" 403'
    )
    try:
        raise ValueError("Authorization: Bearer abcdef and s3cr3t-value")
    except ValueError:
        import sys

        failing = logging.LogRecord(
            "uvicorn.error", logging.ERROR, __file__, 1, "boom", None, sys.exc_info()
        )
    redaction.filter(failing)
    assert failing.exc_text is not None
    assert "abcdef" not in failing.exc_text and "s3cr3t-value" not in failing.exc_text
    assert "Bearer ***" in failing.exc_text


def test_auth_comes_before_any_body_parsing(api_env: ApiEnv) -> None:
    with api_env.client() as client:
        garbage = client.post(
            "/api/halt", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        wrong = client.post(
            "/api/halt",
            content=b"{not json",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {WRONG}"},
        )
        huge_without_token = client.post("/api/halt", content=b"x" * 1_000_000)
        authorised_garbage = client.post(
            "/api/halt",
            content=b"{not json",
            headers={"Content-Type": "application/json", **api_env.auth},
        )
    assert garbage.status_code == wrong.status_code == huge_without_token.status_code == 401
    assert garbage.headers["www-authenticate"] == "Bearer"
    assert authorised_garbage.status_code == 422  # parsed only once the token was right
    store = api_env.store()
    try:
        assert store.halted() is None  # nothing was halted by any of these
    finally:
        store.close()


def test_bodies_over_the_limit_are_refused_with_413(api_env: ApiEnv) -> None:
    limit = api_env.settings.api.max_body_bytes
    reason = "r" * (limit + 1)
    headers = {"Content-Type": "application/json", **api_env.auth}

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while it is read
        yield b'{"reason": "'
        for _ in range(limit // 1000 + 2):
            yield b"r" * 1000
        yield b'"}'

    with api_env.client() as client:
        declared = client.post("/api/halt", content=json.dumps({"reason": reason}), headers=headers)
        streamed = client.post("/api/halt", content=chunked(), headers=headers)
        halted = client.get("/api/orders", headers=api_env.auth)  # the server is still fine
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "transfer-encoding" not in declared.request.headers
    assert streamed.request.headers.get("transfer-encoding") == "chunked"
    assert halted.status_code == 200
    store = api_env.store()
    try:
        assert store.halted() is None
    finally:
        store.close()


def test_no_secret_in_any_response(tmp_path: Path) -> None:
    secrets = {
        "token": "api-token-7c1e0b5d",
        "key": "PKALPACAKEYID1234",
        "secret": "alpaca-secret-0a9b8c7d",
    }
    settings = Settings(
        state_dir=tmp_path,
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),  # never reached: no lifespan here
        api=ApiSettings(token=SecretStr(secrets["token"])),
        APCA_API_KEY_ID=SecretStr(secrets["key"]),
        APCA_API_SECRET_KEY=SecretStr(secrets["secret"]),
    )
    client = TestClient(create_app(settings))
    auth = {"Authorization": f"Bearer {secrets['token']}"}
    responses = [
        client.get("/health"),
        client.get("/health", headers=auth),
        client.get("/openapi.json"),
        client.get("/docs"),
        client.get("/"),
        client.get("/metrics", headers=auth),
        client.get("/api/bars", headers=auth),  # 422: the error names the missing field only
        client.get("/api/symbols"),
        client.post("/api/halt", json={"reason": "x" * 600}, headers=auth),  # 422
        *(
            client.get(f"/api/{kind}", headers=auth)
            for kind in (
                "symbols",
                "signals",
                "alerts",
                "orders",
                "fills",
                "news",
                "positions",
                "strategies",
            )
        ),
    ]
    assert [r.status_code for r in responses[:2]] == [503, 503]  # broker not reachable
    assert responses[0].json() == {"status": "degraded"}
    for response in responses:
        text = response.text + json.dumps(dict(response.headers))
        for name, value in secrets.items():
            assert value not in text, f"{response.request.url.path} shows the {name}"
