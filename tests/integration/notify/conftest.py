"""Notifier tests on the session's real Kafka broker, with the loopback fake of Slack."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.notify.service import Notifier, NotifyStats
from flinktrade.notify.settings import NotifySettings, NotifyTopics
from flinktrade.testing.fake_slack import FakeSlack


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("SLACK_", "FLINKTRADE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def topic(new_topic: Callable[..., str]) -> Callable[[str], str]:
    """Uniquely named topics, deleted after the test (the shared factory)."""
    return new_topic


@pytest.fixture
def notify_topics(topic: Callable[[str], str]) -> NotifyTopics:
    return NotifyTopics(
        alerts=topic("alerts"),
        signals=topic("trading.signals"),
        orders=topic("trading.orders"),
        fills=topic("trading.fills"),
    )


@dataclass
class Running:
    notifier: Notifier
    stop: threading.Event
    thread: threading.Thread
    result: list[NotifyStats]

    def finish(self, timeout_s: float = 20.0) -> NotifyStats:
        self.stop.set()
        self.thread.join(timeout_s)
        assert not self.thread.is_alive(), "the notifier did not stop"
        return self.result[0]


@pytest.fixture
def run_notifier(
    kafka_settings: KafkaSettings, topic: Callable[[str], str]
) -> Iterator[Callable[..., Running]]:
    """Starts a Notifier on a thread; every one still running is stopped after the test (and
    before its topics are deleted)."""
    running: list[Running] = []

    def start(settings: NotifySettings, deadletter_topic: str | None = None) -> Running:
        notifier = Notifier(
            settings, kafka_settings.bootstrap_servers, deadletter_topic=deadletter_topic
        )
        stop = threading.Event()
        result: list[NotifyStats] = []
        thread = threading.Thread(target=lambda: result.append(notifier.run(stop)), daemon=True)
        thread.start()
        running.append(Running(notifier, stop, thread, result))
        return running[-1]

    yield start
    for item in running:
        if item.thread.is_alive():
            item.finish()


def notify_settings(topics: NotifyTopics, **values: object) -> NotifySettings:
    base: dict[str, object] = {
        "topics": topics,
        "group_id": f"notify-test-{uuid.uuid4().hex[:8]}",
        "start_from": "earliest",
        "drain_timeout_s": 2.0,
    }
    return NotifySettings(**{**base, **values})  # type: ignore[arg-type]


@pytest.fixture
def make_settings() -> Callable[..., NotifySettings]:
    return notify_settings


def committed(bootstrap_servers: str, group_id: str, topic: str) -> int:
    """Sum over the topic's partitions of the group's committed positions."""
    positions = bus.committed_positions(bootstrap_servers, group_id, topic)
    return sum(max(offset, 0) for offset in positions.values())


@pytest.fixture
def committed_offsets(kafka_settings: KafkaSettings) -> Callable[[str, str], int]:
    return lambda group_id, topic: committed(kafka_settings.bootstrap_servers, group_id, topic)
