"""``flinktrade backtest --alpaca`` and ``flinktrade optimize --alpaca`` with the in-process engine:
Alpaca history (the loopback fake, through alpaca-py's wire format) straight into memory, with a
broker address that cannot be reached, so nothing may touch Kafka."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flinktrade.testing.command import run_flinktrade
from flinktrade.testing.fake_alpaca_data import FakeAlpacaData

pytestmark = pytest.mark.integration

DAY_START = 1_704_153_600_000  # 2024-01-02 00:00 UTC
DAY_END = DAY_START + 86_400_000 - 1


@pytest.fixture
def fake() -> Iterator[FakeAlpacaData]:
    with FakeAlpacaData(seed=11) as fake:
        yield fake


def _run(fake: FakeAlpacaData, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "FLINKTRADE_"))}
    env.update(
        APCA_API_KEY_ID=fake.key_id,
        APCA_API_SECRET_KEY=fake.secret_key,
        APCA_API_DATA_URL=fake.rest_url,
        FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:1",
        FLINKTRADE_STATE_DIR=str(tmp_path / "state"),
    )
    alpaca = ["--alpaca", "--symbols", "AAPL,MSFT", "--start", "2024-01-02", "--end",
              "2024-01-02", "--timeframe", "1Min"]  # fmt: skip
    command = [*args[:1], *alpaca, *args[1:], "--json"]
    return run_flinktrade(*command, env=env, cwd=tmp_path, timeout=600, script=True)


def test_backtest_and_optimize_over_alpaca_history_in_process(
    fake: FakeAlpacaData, tmp_path: Path
) -> None:
    expected = sum(len(fake.bars(s, DAY_START, DAY_END)) for s in ("AAPL", "MSFT"))
    assert expected >= 2 * 390
    done = _run(fake, tmp_path, "backtest", "--strategy", "sma_cross", "--param", "fast=5",
                "--param", "slow=20", "--out", "report")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads(done.stdout.strip().splitlines()[-1])
    assert metrics["bars"] == expected and metrics["symbols"] == 2
    assert metrics["signals"] > 0
    features = (tmp_path / "report" / "features.csv").read_text().splitlines()
    assert len(features) == 1 + expected
    swept = _run(fake, tmp_path, "optimize", "--grid", "fast=5:10:5", "--grid", "slow=20:30:10",
                 "--jobs", "1", "--out", "sweep")  # fmt: skip
    assert swept.returncode == 0, swept.stderr[-3000:]
    summary = json.loads(swept.stdout.strip().splitlines()[-1])
    assert summary["runs"] == 4 and summary["valid_runs"] == 4
    rows = (tmp_path / "sweep" / "results.csv").read_text().splitlines()
    assert len(rows) == 5
