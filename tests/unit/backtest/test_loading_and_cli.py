"""Reading bar files, and the command's argument errors (exit code 2, one ``error:`` line)."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from backtesting.test import GOOG

from flinktrade.backtest.loading import load_file
from flinktrade.errors import ConfigError
from flinktrade.testing.command import run_flinktrade


def test_a_csv_with_an_unnamed_index_column_of_dates(tmp_path: Path) -> None:
    path = tmp_path / "goog.csv"
    GOOG.head(30).to_csv(path)
    bars = load_file(path, symbol="GOOG").bars
    assert len(bars) == 30
    assert bars[0].ts == 1_092_873_600_000  # 2004-08-19 UTC
    assert (bars[0].open, bars[0].close, bars[0].volume) == (
        Decimal("100.0"),
        Decimal("100.34"),
        22351900,
    )
    assert bars[0].interval_ms == 86_400_000


def test_parquet_with_a_datetime_index_and_lower_case_columns(tmp_path: Path) -> None:
    path = tmp_path / "goog.parquet"
    frame = GOOG.head(10).rename(columns=str.lower)
    frame.index.name = None
    frame.to_parquet(path)
    bars = load_file(path, symbol="GOOG").bars
    assert [float(b.close) for b in bars] == list(GOOG.Close.head(10))


def test_a_file_with_a_symbol_column_and_a_timestamp(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    frame = pd.DataFrame(
        {
            "Timestamp": ["2024-01-02T14:30:00Z", "2024-01-02T14:31:00Z"],
            "Ticker": ["AAPL", "AAPL"],
            "OPEN": [1, 2], "HIGH": [2, 3], "LOW": [1, 2], "CLOSE": [2, 3], "VOLUME": [5, 6],
        }
    )  # fmt: skip
    frame.to_csv(path, index=False)
    bars = load_file(path).bars
    assert [(b.symbol, b.interval_ms) for b in bars] == [("AAPL", 60_000)] * 2


def test_a_file_without_bars_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("time,symbol,price,size\n2024-01-02T14:30:00Z,AAPL,1.5,10\n")
    with pytest.raises(ConfigError, match="not bars"):
        load_file(path)
    with pytest.raises(ConfigError, match="no such file"):
        load_file(tmp_path / "missing.csv")


def test_a_simulated_market_on_shared_cash_from_the_command_line(tmp_path: Path) -> None:
    """``--simulate 3x60`` is ``backtest.simulated``'s market, news included."""
    import json

    from tests.unit.backtest.factories import simulated_market

    from flinktrade.backtest import BacktestRequest, CashMode, ExecutionModel, run_inprocess
    from flinktrade.pipeline.analytics import StrategySpec

    result = _flinktrade(
        ["backtest", "--simulate", "3x60", "--strategy", "sentiment_momentum", "--cash-mode",
         "shared", "--position-size", "0.4", "--json", "--out", "out"], tmp_path
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics.pop("calendar").startswith("bundled, ")  # test_report_calendar.py
    bars, news = simulated_market(symbols=3, minutes=60)
    model = ExecutionModel(cash_mode=CashMode.SHARED, position_size=0.4)
    request = BacktestRequest((StrategySpec("sentiment_momentum", {}),), model)
    expected = run_inprocess(request, bars, news, keep_bars=False).metrics
    assert metrics == expected and metrics["signals"] > 0 and metrics["symbols"] == 3
    page = (tmp_path / "out" / "report.html").read_text()
    assert "simulated 3 symbols x 60 minutes (seed 11)" in page and "shared" in page


def _flinktrade(
    argv: list[str], cwd: Path, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """The installed command with no settings but a broker address nothing listens on."""
    env = {"PATH": "/usr/bin:/bin", "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    return run_flinktrade(*argv, env=env, cwd=cwd, timeout=timeout, script=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "exactly one input"),
        (["--bars-csv", "x.csv", "--from-topics"], "exactly one input"),
        (["--bars-csv", "{csv}", "--fill", "vwap"], "--fill must be one of"),
        (["--bars-csv", "{csv}", "--mode", "short"], "--mode must be one of"),
        (["--bars-csv", "{csv}", "--commission", "2"], "--commission"),
        (["--bars-csv", "{csv}", "--param", "fast"], "expected key=value"),
        (["--bars-csv", "{csv}", "--strategy", "nope"], "unknown strategy"),
        (["--alpaca", "--symbols", "AAPL"], "--alpaca needs"),
        (["--bars-csv", "{csv}", "--engine", "spark"], "--engine must be inprocess or flink"),
        (["--from-topics", "--engine", "inprocess"], "--from-topics needs --engine flink"),
        (["--simulate", "lots"], "--simulate 'lots': expected SYMBOLS or SYMBOLSxMINUTES"),
        (["--simulate", "0x60"], "1 to 500 symbols"),
        (["--simulate", "3x60", "--bars-csv", "{csv}"], "exactly one input"),
        (["--bars-csv", "{csv}", "--cash-mode", "pooled"], "--cash-mode must be one of"),
        (["--bars-csv", "{csv}", "--position-size", "0.5"], "goes with --cash-mode shared"),
        (["--bars-csv", "{csv}", "--cash-mode", "shared", "--position-size", "2"], "(0, 1]"),
        (["--bars-csv", "{csv}", "--volume-share", "2"], "--volume-share is a fraction"),
        (["--bars-csv", "{csv}", "--engine", "flink", "--jobs", "2"], "--jobs goes with"),
        (["--bars-csv", "{csv}", "--jobs", "-1"], "Invalid value for '--jobs'"),
    ],
)
def test_bad_arguments_exit_2_with_one_error_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    csv_path = tmp_path / "goog.csv"
    GOOG.head(5).to_csv(csv_path)
    argv = [a.replace("{csv}", str(csv_path)) for a in args]
    result = _flinktrade(["backtest", *argv], tmp_path, timeout=60)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_a_backtest_without_features_writes_the_same_trades_and_no_features(
    tmp_path: Path,
) -> None:
    """``--no-features``: the bars' indicators are not kept; the signals, orders, trades and
    metrics are the full run's, features.csv is not written (an old one is removed), and the
    report still draws each symbol's closes and trades."""
    common = ["backtest", "--simulate", "3x240", "--strategy", "sma_cross", "--param", "fast=3",
              "--param", "slow=8", "--cash", "9000", "--json"]  # fmt: skip
    (tmp_path / "lean").mkdir()
    (tmp_path / "lean" / "features.csv").write_text("left from an earlier run\n")
    full = _flinktrade([*common, "--out", "full"], tmp_path)
    lean = _flinktrade([*common, "--out", "lean", "--no-features"], tmp_path)
    for done in (full, lean):
        assert done.returncode == 0, done.stderr[-2000:]
    metrics = [json.loads(done.stdout.strip().splitlines()[-1]) for done in (full, lean)]
    assert metrics[0] == metrics[1] and metrics[0]["trades"] > 0
    for name in ("signals.csv", "orders.csv", "trades.csv", "attribution.csv"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "lean" / name).read_bytes()
    assert (tmp_path / "full" / "features.csv").exists()
    assert not (tmp_path / "lean" / "features.csv").exists()
    page = (tmp_path / "lean" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == (
        (tmp_path / "full" / "report.html").read_text().count("data:image/png;base64,")
    )
    assert page.count("data:image/png;base64,") >= 4  # the equity and a chart per symbol


def test_a_backtest_in_worker_processes_writes_the_files_of_one(tmp_path: Path) -> None:
    """``--jobs 2``: the replay split by symbol over two processes; every CSV is byte for byte
    the one-process run's (``--jobs 1``), and the JSON metrics are equal."""
    common = ["backtest", "--simulate", "6x240", "--strategy", "sma_cross", "--param", "fast=3",
              "--param", "slow=8", "--cash", "20000", "--json"]  # fmt: skip
    one = _flinktrade([*common, "--out", "one", "--jobs", "1"], tmp_path)
    two = _flinktrade([*common, "--out", "two", "--jobs", "2"], tmp_path)
    for done in (one, two):
        assert done.returncode == 0, done.stderr[-2000:]
    metrics = [json.loads(done.stdout.strip().splitlines()[-1]) for done in (one, two)]
    assert {k: v for k, v in metrics[0].items() if not k.endswith("_s")} == {
        k: v for k, v in metrics[1].items() if not k.endswith("_s")
    }
    csvs = sorted(p.name for p in (tmp_path / "one").glob("*.csv"))
    assert {"signals.csv", "orders.csv", "trades.csv", "features.csv"} <= set(csvs)
    for name in csvs:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), (
            name
        )
    assert metrics[0]["trades"] > 0
