"""The in-process engine against the Flink engine on 50 simulated symbols with news.

One Flink run (the production job over the run's own bars and news topics) and one in-process run
over the same bars and stories, three strategies (one of them trading on news sentiment): the
report files must be byte-identical and the metrics equal. The stories sit on the edges of the
operator's event-time order (one millisecond before a bar's end, at its end, two at the same
millisecond, one about two symbols). The same check on backtesting.py's GOOG bars is in
``test_backtest.py``, against that module's Flink run. A strategy that breaks the model on one bar
(``tests/unit/backtest/hostile.py``) must leave both engines with the same dead letter and the same
files: both call the model through the operator's ``pipeline.due.DueItems``. The 50-symbol run is
also simulated on shared cash (``--cash-mode shared``) from each engine's output: the same files.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from tests.unit.backtest.factories import T0, simulated_market

from flinktrade import bus, events
from flinktrade.backtest import (
    BacktestRequest,
    BacktestResult,
    CashMode,
    ExecutionModel,
    Mode,
    report,
    run_backtest,
)
from flinktrade.backtest.engine import finish
from flinktrade.backtest.inprocess import run_inprocess
from flinktrade.backtest.metrics import attribution
from flinktrade.backtest.report import write_all
from flinktrade.backtest.runner import RunTopics
from flinktrade.infra.kafka import LocalKafka
from flinktrade.pipeline.analytics import StrategySpec

pytestmark = pytest.mark.integration

STRATEGIES = (
    StrategySpec("sma_cross", {"fast": 5, "slow": 20}),
    StrategySpec("sentiment_momentum", {"period": 10, "threshold": 0.2}),
    StrategySpec("rsi_reversion", {}),
)
FILES = ("signals.csv", "orders.csv", "trades.csv", "features.csv")


def test_both_engines_give_identical_files_and_metrics(kafka: LocalKafka, tmp_path: Path) -> None:
    bars, news = simulated_market(symbols=50, minutes=90)
    request = BacktestRequest(
        STRATEGIES, ExecutionModel(cash=100_000, commission=0.001, mode=Mode.REVERSE)
    )

    def feed(topics: RunTopics) -> int:
        producer = bus.EventProducer(kafka.bootstrap_servers)
        for bar in bars:
            producer.send(bar, topics.bars)
        for story in news:
            producer.send(story, topics.news)
        producer.flush()
        return len(bars)

    flink = run_backtest(kafka.bootstrap_servers, request, feed=feed)
    local = run_inprocess(request, bars, news)

    by_strategy = {s.strategy for s in local.signals}
    assert by_strategy == {"sma_cross", "sentiment_momentum", "rsi_reversion"}, by_strategy
    news_driven = [s for s in local.signals if s.strategy == "sentiment_momentum"]
    assert any(s.indicators.get("sentiment_avg") is not None for s in news_driven)
    assert not flink.deadletters
    for result, name in ((flink, "flink"), (local, "inprocess")):
        write_all(tmp_path / name, result.simulation, result.bars, result.signals,
                  result.metrics, {"strategy": "three"})  # fmt: skip
    for file in FILES:
        ours = (tmp_path / "inprocess" / file).read_bytes()
        assert ours == (tmp_path / "flink" / file).read_bytes(), file
    assert local.metrics == flink.metrics
    assert local.metrics["trades"] > 20
    assert [_comparable(s) for s in local.signals] == [_comparable(s) for s in flink.signals]

    # Shared cash: both engines' bars and signals through the simulation the engines end with.
    shared = replace(request, model=replace(request.model, cash_mode=CashMode.SHARED))
    for result, name in ((flink, "flink-shared"), (local, "inprocess-shared")):
        again = _finished(shared, result)
        folder = tmp_path / name  # the CSVs only: the charts are the same code as above
        folder.mkdir()
        report.write_signals(folder / "signals.csv", again.signals)
        report.write_orders(folder / "orders.csv", again.simulation.orders)
        report.write_trades(folder / "trades.csv", again.simulation.trades)
        report.write_features(folder / "features.csv", again.bars)
        report.write_attribution(folder / "attribution.csv", attribution(again.simulation))
        assert again.metrics != result.metrics  # not the sleeves' portfolio
    for file in (*FILES, "attribution.csv"):
        ours = (tmp_path / "inprocess-shared" / file).read_bytes()
        assert ours == (tmp_path / "flink-shared" / file).read_bytes(), file
    assert _finished(shared, local).metrics == _finished(shared, flink).metrics


def _finished(request: BacktestRequest, result: BacktestResult) -> BacktestResult:
    """``result``'s bars and signals simulated again under ``request`` (its execution model)."""
    priced = [bar for series in result.bars.values() for bar in series]
    return finish(result.run_id, request, priced=priced, report_bars=result.bars,
                  signals=result.signals, alerts=result.alerts, deadletters=result.deadletters,
                  timings={}, started=0.0)  # fmt: skip


def _comparable(signal: events.Signal) -> dict[str, object]:
    return signal.model_dump(exclude={"ingest_ts"})


def test_both_engines_contain_a_bar_the_model_fails_on_alike(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    from decimal import Decimal

    poison = {("AAA", 17), ("BBB", 30)}
    bars = []
    for symbol in ("AAA", "BBB", "CCC"):
        for i in range(60):
            price = "13.37" if (symbol, i) in poison else f"{10 + (i * 7 % 11) / 4:.2f}"
            p = Decimal(price)
            bars.append(events.Bar(symbol=symbol, ts=T0 + i * 60_000, open=p, high=p, low=p,
                                   close=p, volume=5))  # fmt: skip
    bars.sort(key=lambda b: (b.ts, b.symbol))
    request = BacktestRequest(
        (StrategySpec("tests.unit.backtest.hostile:Overreach", {}),),
        ExecutionModel(cash=10_000, mode=Mode.REVERSE),
    )

    flink = run_backtest(kafka.bootstrap_servers, request, bars=bars)
    local = run_inprocess(request, bars)

    assert len(local.deadletters) == 2
    assert sorted(d.reason for d in flink.deadletters) == sorted(
        d.reason for d in local.deadletters
    )
    assert all("analytics failed: ValidationError" in d.reason for d in local.deadletters)
    for result, name in ((flink, "flink"), (local, "inprocess")):
        write_all(tmp_path / name, result.simulation, result.bars, result.signals,
                  result.metrics, {"strategy": "overreach"})  # fmt: skip
    for file in FILES:
        ours = (tmp_path / "inprocess" / file).read_bytes()
        assert ours == (tmp_path / "flink" / file).read_bytes(), file
    assert local.metrics == flink.metrics
    assert local.metrics["trades"] > 20
