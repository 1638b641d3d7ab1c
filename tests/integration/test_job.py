"""The real job in a Flink MiniCluster over a known simulated input, checked against the reference.

The job runs once for the module (start-up costs seconds); the tests read what it wrote.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from flinktrade import bus, events
from flinktrade.config import KafkaSettings
from flinktrade.ingest.simulator import MarketSimulator, RawTrade
from flinktrade.pipeline.job import JobIO, JobOptions, run
from flinktrade.pipeline.operator import StrategySpec
from flinktrade.testing import reference

pytestmark = pytest.mark.integration

SYMBOLS = 6
TRADES = 60_000
BAD_RECORDS: list[tuple[bytes, str]] = [
    (b"not json at all", "malformed JSON"),
    (b'{"id":"b1","symbol":"AAPL","price":-3.5,"size":1,"ts":%(ts)d}', "price out of range"),
    (b'{"id":"b2","symbol":"AAPL","price":"NaN","size":1,"ts":%(ts)d}', "price is not a number"),
    (b'{"id":"b3","symbol":"AAPL","price":10.5,"size":0,"ts":%(ts)d}', "size must be positive"),
    (b'{"id":"b4","price":10.5,"size":3,"ts":%(ts)d}', "missing field: symbol"),
    (b'{"id":"b5","symbol":"AAPL","price":10.5,"size":3,"ts":1}', "differs from the record"),
    (b"[1, 2, 3]", "not a JSON object"),
]
STRATEGIES = (
    StrategySpec("sma_cross", {"fast": 5, "slow": 12, "name": "sma_5_12"}),
    StrategySpec("sma_cross", {"fast": 3, "slow": 8, "name": "sma_3_8"}, frozenset({"AAPL"})),
)


@dataclass
class Run:
    trades: list[RawTrade]
    bars: list[events.AnalyticsBar]
    signals: list[events.Signal]
    deadletters: list[events.DeadLetter]


@pytest.fixture(scope="module")
def job_run(kafka, tmp_path_factory: pytest.TempPathFactory) -> Run:  # type: ignore[no-untyped-def]
    servers = kafka.bootstrap_servers
    suffix = tmp_path_factory.mktemp("job").name
    names = {
        "trades": f"trades.{suffix}",
        "analytics_bars": f"bars.{suffix}",
        "signals": f"signals.{suffix}",
        "deadletter": f"dl.{suffix}",
    }
    bus.ensure_topics(KafkaSettings(bootstrap_servers=servers, partitions=4), names.values())
    trades = MarketSimulator(symbols=SYMBOLS, seed=42, gap_ms=50, news=False).trades(TRADES)
    producer = bus.EventProducer(servers)
    for i, t in enumerate(trades):
        producer.send_raw(names["trades"], t.to_json(t.ts), t.symbol.encode(), t.ts)
        if i == TRADES // 2:  # bad records in the middle of the stream must not disturb it
            for payload, _reason in BAD_RECORDS:
                producer.send_raw(names["trades"], payload % {b"ts": t.ts}, b"AAPL", t.ts)
    producer.flush()

    io = JobIO(
        bootstrap_servers=servers, bounded=True, from_earliest=True, group_id=suffix, **names
    )
    checkpoints = Path(str(tmp_path_factory.mktemp("checkpoints")))
    run(
        io,
        JobOptions(strategies=STRATEGIES, checkpoint_dir=checkpoints, checkpoint_interval_ms=2000),
    )
    return Run(
        trades=trades,
        bars=bus.decode_all(servers, names["analytics_bars"], events.AnalyticsBar),
        signals=bus.decode_all(servers, names["signals"], events.Signal),
        deadletters=bus.decode_all(servers, names["deadletter"], events.DeadLetter),
    )


@pytest.fixture(scope="module")
def expected_bars(job_run: Run) -> list[reference.RefBar]:
    bars = reference.bars((t.symbol, t.price, t.size, t.ts) for t in job_run.trades)
    reference.add_sma(bars, [3, 5, 8, 12])
    return bars


def test_bars_equal_the_reference_exactly(
    job_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    got = sorted(job_run.bars, key=lambda b: (b.symbol, b.ts))
    assert len(got) == len(expected_bars)
    for bar, ref in zip(got, expected_bars, strict=True):
        assert (bar.symbol, bar.ts) == (ref.symbol, ref.ts)
        assert (bar.open, bar.high, bar.low, bar.close) == (ref.open, ref.high, ref.low, ref.close)
        assert bar.volume == ref.volume and bar.trades == ref.trades
        assert bar.vwap is not None and math.isclose(bar.vwap, ref.vwap, rel_tol=1e-12)
        for name in ("sma_5", "sma_12"):
            assert bar.indicators[name] == ref.indicators[name], (bar.symbol, bar.ts, name)


def test_bars_are_keyed_and_timestamped_by_symbol_and_time(kafka, job_run: Run) -> None:  # type: ignore[no-untyped-def]
    assert all(isinstance(b.open, Decimal) for b in job_run.bars)
    assert {b.symbol for b in job_run.bars} == {t.symbol for t in job_run.trades}


def test_signals_equal_the_reference_exactly(
    job_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    expected = {("sma_5_12", *s) for s in reference.sma_cross_signals(expected_bars, 5, 12)} | {
        ("sma_3_8", *s)
        for s in reference.sma_cross_signals([b for b in expected_bars if b.symbol == "AAPL"], 3, 8)
    }
    got = [(s.strategy, s.symbol, s.bar_ts, s.side.value) for s in job_run.signals]
    assert len(got) == len(set(got)), "duplicate signals"
    assert set(got) == expected
    assert len(expected) > 10


def test_signals_carry_ids_prices_and_triggering_indicators(
    job_run: Run, expected_bars: list[reference.RefBar]
) -> None:
    by_key = {(b.symbol, b.ts): b for b in expected_bars}
    for s in job_run.signals:
        ref = by_key[(s.symbol, s.bar_ts)]
        assert s.id == events.Signal.make_id(s.strategy, s.symbol, s.bar_ts)
        assert s.price == ref.close
        assert s.ts == s.bar_ts + 60_000
        names = {"sma_5_12": ("sma_5", "sma_12"), "sma_3_8": ("sma_3", "sma_8")}[s.strategy]
        assert set(s.indicators) == set(names)
        fast, slow = (s.indicators[n] for n in names)
        assert fast is not None and slow is not None
        assert (fast > slow) == (s.side is events.Side.BUY)


def test_bad_records_go_to_the_deadletter_with_reason_and_bytes(job_run: Run) -> None:
    assert len(job_run.deadletters) == len(BAD_RECORDS)
    reasons = sorted(d.reason for d in job_run.deadletters)
    for _payload, expected in BAD_RECORDS:
        assert any(expected in r for r in reasons), (expected, reasons)
    assert any(d.payload == "not json at all" for d in job_run.deadletters)
    assert all(d.offset is not None and d.partition is not None for d in job_run.deadletters)
