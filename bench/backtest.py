"""Backtest throughput: flinktrade's backtester against backtrader on the same generated bars.

    .venv/bin/python -m bench.backtest [--symbols 50] [--days 5]

Generates ``symbols`` x ``days`` x 390 one-minute bars (a seeded log-random walk, market hours
only), runs an SMA(20, 50) crossover over them (a) through ``flinktrade.backtest.run_backtest``
(bars onto a topic of a local Kafka broker started for the run, the production Flink job bounded,
the portfolio simulation) and (b) through backtrader, one ``Cerebro`` per symbol, and prints one
JSON line with bars/s of each and their ratio. flinktrade's time is wall time from the first
produced bar to the simulated result (JVM and job start-up included; ``job_s`` is the job alone).
Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import backtrader as bt
import numpy as np
import pandas as pd

from flinktrade import events
from flinktrade.backtest import BacktestRequest, ExecutionModel, run_backtest
from flinktrade.config import AnalyticsSettings, BrokerSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.testing.ports import free_port

MINUTE = 60_000
DAY = 86_400_000
START = 1_704_205_800_000  # 2024-01-02 14:30 UTC
FAST, SLOW = 20, 50

log = logging.getLogger("bench.backtest")


def generate(symbols: int, days: int, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Per symbol, ``days`` x 390 one-minute OHLCV bars (prices rounded to cents)."""
    rng = np.random.default_rng(seed)
    stamps = np.array(
        [START + d * DAY + m * MINUTE for d in range(days) for m in range(390)], dtype=np.int64
    )
    out = {}
    for i in range(symbols):
        n = len(stamps)
        close = 50 + 100 * rng.random() * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
        open_ = np.concatenate([[close[0]], close[:-1]]) * (1 + rng.normal(0, 0.0002, n))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0005, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0005, n)))
        frame = pd.DataFrame(
            {
                "open": np.round(open_, 2),
                "high": np.round(high, 2),
                "low": np.round(low, 2),
                "close": np.round(close, 2),
                "volume": rng.integers(100, 10_000, n),
            },
            index=pd.to_datetime(stamps, unit="ms"),
        )
        frame["high"] = frame[["open", "high", "close"]].max(axis=1)
        frame["low"] = frame[["open", "low", "close"]].min(axis=1)
        out[f"S{i:03d}"] = frame
    return out


def to_bars(frames: dict[str, pd.DataFrame]) -> list[events.Bar]:
    bars = []
    for symbol, frame in frames.items():
        stamps = frame.index.asi8 // 1_000_000
        rows = zip(
            stamps, frame.open, frame.high, frame.low, frame.close, frame.volume, strict=True
        )
        for ts, o, h, low, c, v in rows:
            bars.append(
                events.Bar(
                    symbol=symbol, ts=int(ts), open=Decimal(repr(float(o))),
                    high=Decimal(repr(float(h))), low=Decimal(repr(float(low))),
                    close=Decimal(repr(float(c))), volume=int(v), ingest_ts=0,
                )
            )  # fmt: skip
    bars.sort(key=lambda b: (b.ts, b.symbol))
    return bars


class _BtCross(bt.Strategy):  # type: ignore[misc]
    def __init__(self) -> None:
        fast = bt.ind.SMA(self.data.close, period=FAST)
        slow = bt.ind.SMA(self.data.close, period=SLOW)
        self.cross = bt.ind.CrossOver(fast, slow)
        self.signals = 0

    def next(self) -> None:
        if self.cross[0] > 0:
            self.signals += 1
            if not self.position:
                self.buy(size=int(self.broker.getcash() // self.data.close[0]))
        elif self.cross[0] < 0:
            self.signals += 1
            if self.position:
                self.close()


def run_backtrader(frames: dict[str, pd.DataFrame], cash: float) -> dict[str, Any]:
    started = time.monotonic()
    signals = 0
    for frame in frames.values():
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame))
        cerebro.addstrategy(_BtCross)
        cerebro.broker.setcash(cash / len(frames))
        [strategy] = cerebro.run()
        signals += strategy.signals
    return {"seconds": time.monotonic() - started, "signals": signals}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--days", type=int, default=5, help="trading days of 390 minutes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    for noisy in ("py4j", "pyflink", "apache_beam", "flinktrade"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    frames = generate(args.symbols, args.days)
    bars = to_bars(frames)
    log.info("generated %d bars (%d symbols x %d days)", len(bars), args.symbols, args.days)
    cash = 1_000_000.0
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as state:
        broker = LocalKafka(
            BrokerSettings(port=free_port(), controller_port=free_port(), heap="1g"), Path(state)
        )
        broker.up()
        try:
            request = BacktestRequest(
                strategies=(StrategySpec("sma_cross", {"fast": FAST, "slow": SLOW}),),
                model=ExecutionModel(cash=cash),
                analytics=AnalyticsSettings(alerts=False),
            )
            started = time.monotonic()
            result = run_backtest(broker.bootstrap_servers, request, bars=bars)
            ours_s = time.monotonic() - started
        finally:
            broker.down()
    log.info("flinktrade: %.1f s (job %.1f s)", ours_s, result.timings["job_s"])
    theirs = run_backtrader(frames, cash)
    log.info("backtrader: %.1f s", theirs["seconds"])
    n = len(bars)
    ours_rate = n / ours_s
    theirs_rate = n / theirs["seconds"]
    print(
        json.dumps(
            {
                "bench": "backtest",
                "symbols": args.symbols,
                "days": args.days,
                "bars": n,
                "cores": os.cpu_count(),
                "flinktrade_s": round(ours_s, 2),
                "flinktrade_job_s": round(result.timings["job_s"], 2),
                "flinktrade_input_s": round(result.timings["input_s"], 2),
                "flinktrade_bars_per_s": round(ours_rate),
                "flinktrade_job_bars_per_s": round(n / result.timings["job_s"]),
                "flinktrade_signals": len(result.signals),
                "backtrader_s": round(theirs["seconds"], 2),
                "backtrader_bars_per_s": round(theirs_rate),
                "backtrader_signals": theirs["signals"],
                "ratio": round(ours_rate / theirs_rate, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
