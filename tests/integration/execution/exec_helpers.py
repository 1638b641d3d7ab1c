"""Helpers of the executor integration tests (settings per test, signals, runners)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from flinktrade import bus, events
from flinktrade.config import KafkaSettings, Settings
from flinktrade.events import Side, Signal, Trade
from flinktrade.execution.book import ExecutorStats
from flinktrade.execution.loop import Executor
from flinktrade.execution.settings import ExecutionSettings, ExecutionTopics
from flinktrade.execution.store import OrderStore
from flinktrade.testing.command import flinktrade_argv
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading


@dataclass
class Env:
    """Builds settings for one test: its topics, state folder and the fake's URLs."""

    kafka: KafkaSettings
    topics: ExecutionTopics
    state_dir: Path
    fake: FakeAlpacaTrading
    group_id: str

    def execution(self, **overrides: Any) -> ExecutionSettings:
        base: dict[str, Any] = {
            "topics": self.topics,
            "group_id": self.group_id,
            "start_from": "earliest",
            "reconcile_interval_s": 2.0,
            "order_poll_interval_s": 0.5,
            "account_refresh_s": 2.0,
            "request_timeout_s": 2.0,
            "unknown_retry_s": 0.2,
        }
        base.update(overrides)
        return ExecutionSettings(**base)

    def settings(self, **overrides: Any) -> Settings:
        return Settings(
            state_dir=self.state_dir,
            kafka=self.kafka,
            execution=self.execution(**overrides),
            APCA_API_KEY_ID=self.fake.key_id,
            APCA_API_SECRET_KEY=self.fake.secret_key,
            APCA_API_BASE_URL=self.fake.base_url,
            APCA_API_TRADING_STREAM_URL=self.fake.stream_url,
        )

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for ``python -m flinktrade.cli execute --broker alpaca``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FLINKTRADE_", "APCA_"))}
        env.update(
            {
                "FLINKTRADE_STATE_DIR": str(self.state_dir),
                "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": self.kafka.bootstrap_servers,
                "FLINKTRADE_KAFKA__PARTITIONS": "2",
                "FLINKTRADE_EXECUTION__TOPICS__SIGNALS": self.topics.signals,
                "FLINKTRADE_EXECUTION__TOPICS__ORDERS": self.topics.orders,
                "FLINKTRADE_EXECUTION__TOPICS__FILLS": self.topics.fills,
                "FLINKTRADE_EXECUTION__TOPICS__ALERTS": self.topics.alerts,
                "FLINKTRADE_EXECUTION__TOPICS__DEADLETTER": self.topics.deadletter,
                "FLINKTRADE_EXECUTION__TOPICS__PRICES": json.dumps(self.topics.prices),
                "FLINKTRADE_EXECUTION__GROUP_ID": self.group_id,
                "FLINKTRADE_EXECUTION__START_FROM": "earliest",
                "FLINKTRADE_EXECUTION__RECONCILE_INTERVAL_S": "2",
                "FLINKTRADE_EXECUTION__ORDER_POLL_INTERVAL_S": "0.5",
                "FLINKTRADE_EXECUTION__REQUEST_TIMEOUT_S": "2",
                "FLINKTRADE_EXECUTION__RISK__MAX_SIGNAL_AGE_S": "600",
                "APCA_API_KEY_ID": self.fake.key_id,
                "APCA_API_SECRET_KEY": self.fake.secret_key,
                "APCA_API_BASE_URL": self.fake.base_url,
                "APCA_API_TRADING_STREAM_URL": self.fake.stream_url,
            }
        )
        env.update(extra)
        return env

    def store(self) -> OrderStore:
        return OrderStore(self.execution().store_path(self.state_dir))

    def produce(self, signals: list[Signal], *, prices: bool = True) -> None:
        """Signals, each symbol's market price (the signal's price) published just before."""
        producer = bus.EventProducer(self.kafka.bootstrap_servers)
        if prices:
            for symbol, price in {s.symbol: s.price for s in signals}.items():
                self.send_price(producer, symbol, price)
        for s in signals:
            producer.send(s, self.topics.signals)
        producer.flush()

    def send_price(
        self, producer: bus.EventProducer, symbol: str, price: Decimal, ts: int | None = None
    ) -> None:
        ts = events.now_ms() if ts is None else ts
        trade = Trade(ts=ts, id=f"t-{symbol}-{ts}-{price}", symbol=symbol, price=price, size=1)
        producer.send(trade, self.topics.prices[0])

    def produce_raw(self, records: list[bytes]) -> None:
        producer = bus.EventProducer(self.kafka.bootstrap_servers)
        for value in records:
            producer.send_raw(self.topics.signals, value, None, None)
        producer.flush()

    def read(self, which: str, kind: type[events.E]) -> list[events.E]:
        return bus.decode_all(self.kafka.bootstrap_servers, getattr(self.topics, which), kind)


def make_signals(
    n: int,
    *,
    symbols: tuple[str, ...] = ("AAPL", "MSFT"),
    side: Side = Side.BUY,
    price: Decimal = Decimal("100.00"),
    strategy: str = "test",
    ingest_ts: int | None = None,
    start: int = 0,
) -> list[Signal]:
    """``n`` signals of now (event time ``ts`` 5 s ago or less, unique bar times)."""
    out = []
    base = events.now_ms() - 65_000 - (start + n)
    for i in range(start, start + n):
        bar_ts = base + i
        symbol = symbols[i % len(symbols)]
        fields: dict[str, Any] = {}
        if ingest_ts is not None:
            fields["ingest_ts"] = ingest_ts
        out.append(
            Signal(
                id=Signal.make_id(strategy, symbol, bar_ts),
                strategy=strategy,
                symbol=symbol,
                side=side,
                price=price,
                bar_ts=bar_ts,
                ts=bar_ts + 60_000,
                **fields,
            )
        )
    return out


def coid(signal: Signal) -> str:
    """The client_order_id the contract says a signal gets (prefix 'ft-' + signal id)."""
    return "ft-" + signal.id


@dataclass
class Running:
    executor: Executor
    stop: threading.Event
    thread: threading.Thread
    result: list[ExecutorStats]
    errors: list[BaseException]

    def started(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.executor.consuming:
            assert not self.errors, self.errors
            assert time.monotonic() < deadline, "executor did not start"
            time.sleep(0.02)

    def finish(self, timeout_s: float = 30.0) -> ExecutorStats:
        self.stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the executor did not stop"
        assert not self.errors, self.errors
        return self.result[0]


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    bus.wait_for(predicate, timeout_s, interval_s=0.05, what=what)


def spawn_executor(env: Env, **extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        flinktrade_argv("execute", "--broker", "alpaca"),
        env=env.env(**extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_until_killed(proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Wait (at most ``timeout_s``) for an executor spawned with a crash step to die by SIGKILL;
    killed and failed otherwise (the tail of its stderr in the message)."""
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    _, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()[-3000:]
