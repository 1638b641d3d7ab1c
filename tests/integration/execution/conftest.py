"""Executor tests on the session's real Kafka broker, against the loopback fake of Alpaca."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from exec_helpers import Env, Running

from flinktrade import bus
from flinktrade.config import KafkaSettings, Settings
from flinktrade.execution.book import ExecutorStats
from flinktrade.execution.brokers import make_broker
from flinktrade.execution.brokers.alpaca import AlpacaBroker
from flinktrade.execution.brokers.base import Broker
from flinktrade.execution.loop import Executor
from flinktrade.execution.settings import ExecutionTopics
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("SLACK_", "FLINKTRADE_", "APCA_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake() -> Iterator[FakeAlpacaTrading]:
    with FakeAlpacaTrading(fill_price=Decimal("100.25"), enforce_unique=False) as f:
        yield f


@pytest.fixture
def topic(new_topic: Callable[..., str]) -> Callable[[str], str]:
    """Uniquely named topics (2 partitions), deleted after the test (the shared factory)."""
    return lambda base: new_topic(base, 2)


@pytest.fixture
def exec_topics(topic: Callable[[str], str]) -> ExecutionTopics:
    return ExecutionTopics(
        signals=topic("trading.signals"),
        orders=topic("trading.orders"),
        fills=topic("trading.fills"),
        alerts=topic("alerts"),
        deadletter=topic("deadletter"),
        prices=[topic("market.trades")],
    )


@pytest.fixture
def env(
    kafka_settings: KafkaSettings,
    exec_topics: ExecutionTopics,
    state_dir: Path,
    fake: FakeAlpacaTrading,
) -> Env:
    return Env(kafka_settings, exec_topics, state_dir, fake, f"exec-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def start_executor() -> Iterator[Callable[..., Running]]:
    running: list[Running] = []

    def start(settings: Settings, broker: str | Broker = "alpaca") -> Running:
        """An executor on its own thread, with the broker named (built from ``settings``) or
        given."""
        bus.ensure_topics(settings.kafka, [settings.execution.topics.signals])
        venue = make_broker(settings, broker) if isinstance(broker, str) else broker
        executor = Executor(settings, venue)
        stop = threading.Event()
        result: list[ExecutorStats] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                result.append(executor.run(stop))
            except BaseException as exc:
                errors.append(exc)
                raise

        thread = threading.Thread(target=target, daemon=True)
        r = Running(executor, stop, thread, result, errors)
        thread.start()
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop.set()
        r.thread.join(30)


@pytest.fixture
def alpaca(fake: FakeAlpacaTrading) -> Iterator[AlpacaBroker]:
    """The Alpaca adapter pointed at the fake (no executor around it)."""
    broker = AlpacaBroker(
        fake.key_id, fake.secret_key, base_url=fake.base_url, stream_url=fake.stream_url,
        timeout_s=2.0,
    )  # fmt: skip
    yield broker
    broker.close()
