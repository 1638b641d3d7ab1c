"""Replaying CSV and Parquet files into the real broker."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.errors import ConfigError
from flinktrade.events import Bar, DeadLetter, Trade
from flinktrade.ingest.history import Sink
from flinktrade.ingest.replay import read_file, run_replay
from flinktrade.ingest.settings import IngestTopics

pytestmark = pytest.mark.integration


def test_csv_trades_with_odd_header_case(
    tmp_path: Path,
    make_sink: Callable[[], Sink],
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:
    path = tmp_path / "trades.csv"
    path.write_text(
        "TimeStamp,Ticker,PRICE,Qty,Trade-ID\n"
        "2024-01-02T14:30:01Z,aapl,185.64,100,7\n"
        "2024-01-02T14:30:00.5Z,MSFT,370.10,5,8\n"
        "2024-01-02T14:30:02Z,AAPL,185.70,0,9\n"
        "2024-01-02T14:30:03Z,AAPL,,10,10\n"
    )
    data = read_file(path)
    assert (data.kind, data.has_header) == ("trades", True)
    counts = run_replay(data, make_sink(), speed=None)
    assert counts == {"bars": 0, "trades": 2, "news": 0, "deadletter": 2}
    servers = kafka_settings.bootstrap_servers
    trades = bus.decode_all(servers, ingest_topics.trades, Trade)
    assert sorted((t.symbol, t.ts, t.price, t.size) for t in trades) == [
        ("AAPL", 1_704_205_801_000, Decimal("185.64"), 100),
        ("MSFT", 1_704_205_800_500, Decimal("370.10"), 5),
    ]
    keys = {(m.key(), m.timestamp()[1]) for m in bus.read_all(servers, ingest_topics.trades)}
    assert keys == {(b"AAPL", 1_704_205_801_000), (b"MSFT", 1_704_205_800_500)}
    dead = bus.decode_all(servers, ingest_topics.deadletter, DeadLetter)
    assert sorted(d.reason.split(": ", 1)[1] for d in dead) == [
        "p: missing (row 5)",
        "s: size 0 is zero or negative (row 4)",
    ]


def test_headerless_csv_bars_paced(
    tmp_path: Path, make_sink: Callable[[], Sink], kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:  # fmt: skip
    path = tmp_path / "bars.csv"
    path.write_text(
        "1704205800000,NVDA,480.1,481,479.5,480.5,1000\n"
        "1704205860000,NVDA,480.5,482,480,481.9,1500\n"
        "1704205920000,NVDA,481.9,482.5,481,482,900\n"
    )
    data = read_file(path)
    assert (data.kind, data.has_header, data.interval_ms) == ("bars", False, 60_000)
    began = time.monotonic()
    counts = run_replay(data, make_sink(), speed=240.0)  # a minute in 0.25 s
    assert time.monotonic() - began >= 0.45
    assert counts["bars"] == 3
    bars = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.bars, Bar)
    assert [(b.ts, b.close) for b in bars] == [
        (1_704_205_800_000, Decimal("480.5")),
        (1_704_205_860_000, Decimal("481.9")),
        (1_704_205_920_000, Decimal("482")),
    ]


def test_parquet_daily_bars_without_symbol_column(
    tmp_path: Path, make_sink: Callable[[], Sink], kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:  # fmt: skip
    path = tmp_path / "spy.parquet"
    pd.DataFrame(
        {
            "Date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-05"]),
            "Open": [472.16, 470.43, 467.49],
            "High": [473.67, 471.19, 470.44],
            "Low": [470.49, 468.17, 466.43],
            "Close": [472.65, 468.79, 467.92],
            "Volume": [123623700, 103585900, 86118900],
        }
    ).to_parquet(path)
    with pytest.raises(ConfigError, match="--symbol"):
        read_file(path)
    data = read_file(path, symbol="SPY")
    assert (data.kind, data.interval_ms) == ("bars", 86_400_000)
    assert run_replay(data, make_sink(), speed=None)["bars"] == 3
    bars = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.bars, Bar)
    assert [(b.symbol, b.ts, b.open, b.volume) for b in bars] == [
        ("SPY", 1_704_153_600_000, Decimal("472.16"), 123623700),
        ("SPY", 1_704_240_000_000, Decimal("470.43"), 103585900),
        ("SPY", 1_704_412_800_000, Decimal("467.49"), 86118900),
    ]
    assert all(b.interval_ms == 86_400_000 for b in bars)
