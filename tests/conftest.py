"""Shared fixtures: one real Kafka broker (KRaft) per test session, on free loopback ports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flinktrade.bus import delete_topics, ensure_topics
from flinktrade.config import BrokerSettings, KafkaSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.testing.ports import free_port


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A real single-node Kafka 4 broker, started through ``flinktrade infra`` code."""
    state = tmp_path_factory.mktemp("state")
    broker = LocalKafka(
        BrokerSettings(port=free_port(), controller_port=free_port(), heap="768m"), state
    )
    broker.up()
    yield broker
    broker.down()


@pytest.fixture
def kafka_settings(kafka: LocalKafka) -> KafkaSettings:
    return KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, partitions=4)


class TopicFactory:
    """Creates uniquely named topics for one test and deletes them afterwards."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.created: list[str] = []

    def __call__(self, base: str, partitions: int | None = None) -> str:
        name = f"{base}.{uuid.uuid4().hex[:8]}"
        settings = self.settings
        if partitions is not None:
            settings = settings.model_copy(update={"partitions": partitions})
        ensure_topics(settings, [name])
        self.created.append(name)
        return name


@pytest.fixture
def new_topic(kafka_settings: KafkaSettings) -> Iterator[TopicFactory]:
    factory = TopicFactory(kafka_settings)
    yield factory
    if factory.created:
        delete_topics(kafka_settings.bootstrap_servers, factory.created)


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
