"""Notify unit tests: no Slack settings leak in from the environment or the working directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from flinktrade.testing.fake_slack import FakeSlack


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("SLACK_", "FLINKTRADE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no .env or flinktrade.toml of the developer's


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake
