"""The API's kill switch is the CLI's: ``POST /api/halt`` refuses a store that does not exist,
``POST /api/resume`` can adopt the broker's positions first. The routes run in-process (no
lifespan, so no feed and no Kafka): only the order store file is involved."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient
from pydantic import SecretStr

from flinktrade.api.app import create_app
from flinktrade.config import Settings
from flinktrade.execution.store import OrderStore


def client_and_store(tmp_path: Path) -> tuple[TestClient, Path, dict[str, str]]:
    token = uuid.uuid4().hex
    settings = Settings(state_dir=tmp_path)
    app = create_app(settings, token=SecretStr(token))
    path = settings.execution.store_path(settings.state_dir)
    return TestClient(app), path, {"Authorization": f"Bearer {token}"}


def test_halt_and_resume_refuse_a_store_that_does_not_exist(tmp_path: Path) -> None:
    client, path, auth = client_and_store(tmp_path)
    halted = client.post("/api/halt", json={"reason": "x"}, headers=auth)
    resumed = client.post("/api/resume", headers=auth)
    assert halted.status_code == 409 and resumed.status_code == 409
    assert halted.json()["detail"].startswith("no order store at ")
    assert not path.exists()  # nothing created


def test_resume_adopts_the_broker_positions_as_the_cli_does(tmp_path: Path) -> None:
    client, path, auth = client_and_store(tmp_path)
    # the simulated broker's own book is empty: adopting it takes the store's TSLA away
    store = OrderStore(path)
    store.halt("mismatch")
    store.adopt_positions({"TSLA": Decimal(7)})
    store.close()
    resumed = client.post(
        "/api/resume", json={"adopt_broker_positions": True, "broker": "sim"}, headers=auth
    )
    assert resumed.status_code == 200, resumed.text
    assert resumed.json() == {"state": "running", "reason": None}
    store = OrderStore(path)
    try:
        assert store.halted() is None
        assert store.positions() == {}
    finally:
        store.close()
