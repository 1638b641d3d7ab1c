"""The backtester end to end on backtesting.py's GOOG daily bars, through the real job.

One module, two job runs shared by every test: the backtest through the Python API (the Flink
engine), and the same bars replayed through Kafka into the job running unbounded (the live path).
The same backtest also runs through the ``flinktrade backtest`` command (a subprocess, the
in-process engine by default) and through the in-process engine's Python API: both must give the
Flink engine's files byte for byte.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from backtesting import Backtest, Strategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

from flinktrade import bus, events
from flinktrade.backtest import BacktestRequest, ExecutionModel, Mode, run_backtest
from flinktrade.backtest.inprocess import run_inprocess
from flinktrade.backtest.loading import load_file
from flinktrade.backtest.report import write_all
from flinktrade.backtest.runner import delete
from flinktrade.config import KafkaSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.pipeline.job import JobIO, JobOptions, run
from flinktrade.testing.command import run_flinktrade

pytestmark = pytest.mark.integration

CASH = 10_000.0
COMMISSION = 0.002
SMA_CROSS = StrategySpec("sma_cross", {"fast": 10, "slow": 20})
PEEKER = StrategySpec("tests.integration.backtest.peek:Peeker", {})
DAY = 86_400_000
REPO = Path(__file__).resolve().parents[3]


class SmaCross(Strategy):
    """backtesting.py's own example: on a crossover close the position and open the other side."""

    n1 = 10
    n2 = 20

    def init(self) -> None:
        self.sma1 = self.I(SMA, self.data.Close, self.n1)
        self.sma2 = self.I(SMA, self.data.Close, self.n2)

    def next(self) -> None:
        if crossover(self.sma1, self.sma2):
            self.position.close()
            self.buy()
        elif crossover(self.sma2, self.sma1):
            self.position.close()
            self.sell()


@dataclass
class Runs:
    servers: str
    bars: list[events.Bar]
    api: Any  # BacktestResult
    api_dir: Path
    cli: subprocess.CompletedProcess[str]
    cli_dir: Path


@pytest.fixture(scope="module")
def goog_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = Path(str(tmp_path_factory.mktemp("data"))) / "GOOG.csv"
    GOOG.to_csv(path)  # an unnamed index column of dates, Open..Volume
    return path


@pytest.fixture(scope="module")
def runs(kafka: LocalKafka, goog_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    servers = kafka.bootstrap_servers
    bars = load_file(goog_csv, symbol="GOOG").bars
    model = ExecutionModel(cash=CASH, commission=COMMISSION, mode=Mode.REVERSE)
    result = run_backtest(servers, BacktestRequest((SMA_CROSS,), model), bars=bars)
    api_dir = Path(str(tmp_path_factory.mktemp("api")))
    settings = {"strategy": "sma_cross"}
    write_all(api_dir, result.simulation, result.bars, result.signals, result.metrics, settings)

    cli_dir = Path(str(tmp_path_factory.mktemp("cli")))
    env = dict(os.environ)
    env.update(
        {
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": servers,
            "FLINKTRADE_STATE_DIR": str(cli_dir / "state"),
        }
    )
    cli = run_flinktrade(
        "backtest",
        "--bars-csv",
        str(goog_csv),
        "--symbol",
        "GOOG",
        "--strategy",
        "sma_cross",
        "--param",
        "fast=10",
        "--param",
        "slow=20",
        "--cash",
        "10000",
        "--commission",
        "0.002",
        "--mode",
        "reverse",
        "--out",
        str(cli_dir / "out"),
        "--json",
        env=env,
        cwd=REPO,
        timeout=240,
        script=True,
    )
    return Runs(servers, bars, result, api_dir, cli, cli_dir / "out")


def reference() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open": the same holds for ours
        return Backtest(GOOG, SmaCross, cash=CASH, commission=COMMISSION).run()


def test_same_trades_and_final_equity_as_backtesting_py(runs: Runs) -> None:
    theirs = reference()
    ours = runs.api.metrics
    print(
        f"\nbacktesting.py: {theirs['# Trades']} trades, final equity "
        f"{theirs['Equity Final [$]']:.4f}; flinktrade: {ours['trades']} trades, "
        f"final equity {ours['equity_final']:.4f}"
    )
    assert ours["bars"] == len(GOOG)
    assert ours["trades"] == theirs["# Trades"]
    assert ours["equity_final"] == pytest.approx(theirs["Equity Final [$]"], rel=0.005)
    assert ours["max_drawdown_pct"] == pytest.approx(theirs["Max. Drawdown [%]"], rel=0.01)
    # The round trips themselves: entry and exit days, direction and size.
    frame = theirs["_trades"]
    expected = [
        (str(row.EntryTime.date()), str(row.ExitTime.date()), int(row.Size))
        for row in frame.itertuples()
    ]
    closed = [t for t in runs.api.simulation.trades if t.exit_ts is not None]
    got = [
        (
            str(datetime.fromtimestamp(t.entry_ts / 1000, UTC).date()),
            str(datetime.fromtimestamp((t.exit_ts or 0) / 1000, UTC).date()),
            t.size if t.direction == "long" else -t.size,
        )
        for t in closed
    ]
    assert got == expected


def test_the_command_writes_the_report_and_ends_with_one_json_line(runs: Runs) -> None:
    assert runs.cli.returncode == 0, runs.cli.stderr[-3000:]
    last = runs.cli.stdout.strip().splitlines()[-1]
    metrics = json.loads(last)
    for key in (
        "equity_final", "return_pct", "buy_hold_return_pct", "cagr_pct", "sharpe", "sortino",
        "max_drawdown_pct", "trades", "win_rate_pct", "profit_factor", "exposure_pct",
    ):  # fmt: skip
        assert key in metrics
    assert metrics["trades"] == runs.api.metrics["trades"]
    assert metrics["equity_final"] == runs.api.metrics["equity_final"]
    names = {p.name for p in runs.cli_dir.iterdir()}
    assert {"report.html", "equity.png", "trades.csv", "signals.csv", "orders.csv"} <= names
    page = (runs.cli_dir / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 2 and 'src="http' not in page
    assert (runs.cli_dir / "equity.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    features = (runs.cli_dir / "features.csv").read_text().splitlines()
    assert features[0] == (
        "ts,open,high,low,close,volume,sma_20,sma_50,ema_12,ema_26,rsi_14,macd,macd_signal,"
        "macd_hist,bb_upper_20_2,bb_middle_20_2,bb_lower_20_2,atr_14"
    )
    assert len(features) == 1 + len(GOOG)
    first = features[1].split(",")
    assert first[0] == "2004-08-19T00:00:00Z"
    assert [Decimal(v) for v in first[1:6]] == [Decimal(v) for v in GOOG.iloc[0].astype(str)]
    assert first[6] == ""  # sma_20 is not defined on the first bar
    twentieth = features[20].split(",")
    assert float(twentieth[6]) == pytest.approx(GOOG.Close.iloc[:20].mean(), abs=1e-9)


def test_two_backtests_give_byte_identical_signals_and_trades(runs: Runs) -> None:
    assert runs.cli.returncode == 0, runs.cli.stderr[-3000:]
    for name in ("signals.csv", "trades.csv", "orders.csv", "features.csv"):
        ours = (runs.api_dir / name).read_bytes()
        assert ours == (runs.cli_dir / name).read_bytes(), name
    assert (runs.api_dir / "signals.csv").read_text().count("\n") == 1 + len(runs.api.signals)


def test_the_in_process_engine_gives_the_flink_engine_files_and_metrics(
    runs: Runs, tmp_path: Path
) -> None:
    model = ExecutionModel(cash=CASH, commission=COMMISSION, mode=Mode.REVERSE)
    local = run_inprocess(BacktestRequest((SMA_CROSS,), model), runs.bars)
    write_all(tmp_path, local.simulation, local.bars, local.signals, local.metrics,
              {"strategy": "sma_cross"})  # fmt: skip
    for name in ("signals.csv", "orders.csv", "trades.csv", "features.csv"):
        assert (tmp_path / name).read_bytes() == (runs.api_dir / name).read_bytes(), name
    assert local.metrics == runs.api.metrics
    assert local.metrics["trades"] == 93


@pytest.fixture(scope="module")
def live(
    kafka: LocalKafka, runs: Runs, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, list[Any]]]:
    """The recorded bars produced to a topic the job reads while running unbounded."""
    servers = runs.servers
    suffix = tmp_path_factory.mktemp("live").name
    names = {
        role: f"live.{suffix}.{role}"
        for role in ("trades", "news", "bars", "analytics_bars", "signals", "alerts", "deadletter")
    }
    bus.ensure_topics(KafkaSettings(bootstrap_servers=servers, partitions=1), names.values())
    io = JobIO(bootstrap_servers=servers, from_earliest=True, group_id=suffix, **names)
    options = JobOptions(
        strategies=(SMA_CROSS, PEEKER),
        checkpoint_dir=Path(str(tmp_path_factory.mktemp("chk"))),
        idle_timeout_ms=500,
    )
    client: Any = run(io, options, wait=False)
    try:
        producer = bus.EventProducer(servers)
        for bar in runs.bars:
            producer.send(bar, names["bars"])
        # A later bar of another symbol moves the watermark past the last GOOG bar.
        last = runs.bars[-1]
        clock = last.model_copy(update={"symbol": "ZZCLOCK", "ts": last.ts + 30 * DAY})
        producer.send(clock, names["bars"])
        producer.flush()
        expected = len(runs.api.signals)

        def signals() -> list[events.Signal]:
            return bus.decode_all(servers, names["signals"], events.Signal)

        def done() -> bool:
            got = signals()
            peeks = sum(1 for s in got if s.strategy == "peeker")
            return peeks >= len(runs.bars) and len(got) - peeks >= expected

        bus.wait_for(done, timeout_s=120, interval_s=1.0, what="the live job's signals")
        yield {"signals": signals()}
    finally:
        client.cancel().result()
        delete(servers, list(names.values()))


def _comparable(signal: events.Signal) -> dict[str, Any]:
    return signal.model_dump(exclude={"ingest_ts"})


def test_backtest_signals_equal_the_live_signals(runs: Runs, live: dict[str, list[Any]]) -> None:
    live_signals = sorted(
        (s for s in live["signals"] if s.strategy == "sma_cross"), key=lambda s: s.bar_ts
    )
    assert runs.api.signals, "the backtest produced no signals to compare"
    assert [_comparable(s) for s in live_signals] == [_comparable(s) for s in runs.api.signals]


def test_a_strategy_never_sees_a_bar_after_its_signal(
    runs: Runs, live: dict[str, list[Any]]
) -> None:
    peeks = sorted((s for s in live["signals"] if s.strategy == "peeker"), key=lambda s: s.ts)
    goog = [s for s in peeks if s.symbol == "GOOG"]
    assert len(goog) == len(runs.bars)
    for i, (signal, bar) in enumerate(zip(goog, runs.bars, strict=True)):
        seen = json.loads(signal.reason)
        assert seen["n"] == i + 1  # one bar at a time, in order, none skipped or repeated
        assert seen["end_ts"] == bar.ts + bar.interval_ms == signal.ts
        assert seen["max_end"] == signal.ts  # nothing later had been handed over
        assert seen["future"] == []
    # The fills of the backtest never use a price from before the signal's close.
    for order in runs.api.simulation.orders:
        if order.status == "filled":
            assert order.fill_ts is not None and order.fill_ts >= order.signal_ts
