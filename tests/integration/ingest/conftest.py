"""Ingest tests on the session's real Kafka broker, with the loopback fake of Alpaca market data."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.ingest.alpaca import Credentials, MarketDataRest, RetryPolicy
from flinktrade.ingest.history import Sink
from flinktrade.ingest.settings import IngestTopics
from flinktrade.testing.fake_alpaca_data import FakeAlpacaData


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith(("APCA_", "FLINKTRADE_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def fake() -> Iterator[FakeAlpacaData]:
    with FakeAlpacaData(seed=11) as fake:
        yield fake


@pytest.fixture
def credentials(fake: FakeAlpacaData) -> Credentials:
    return Credentials(SecretStr(fake.key_id), SecretStr(fake.secret_key))


@pytest.fixture
def rest(fake: FakeAlpacaData, credentials: Credentials) -> MarketDataRest:
    return MarketDataRest(credentials, fake.rest_url, RetryPolicy(backoff_base_s=0.05))


@pytest.fixture
def ingest_topics(kafka_settings: KafkaSettings) -> Iterator[IngestTopics]:
    """Uniquely named ingest topics, deleted after the test (waiting for the deletion)."""
    suffix = uuid.uuid4().hex[:8]
    names = {f: f"{f}.{suffix}" for f in IngestTopics.model_fields}
    topics = IngestTopics(**names)
    bus.ensure_topics(kafka_settings, topics.all())
    yield topics
    client = bus.admin(kafka_settings.bootstrap_servers)
    for future in client.delete_topics(topics.all(), request_timeout=30).values():
        future.result()


@pytest.fixture
def make_sink(kafka_settings: KafkaSettings, ingest_topics: IngestTopics) -> Callable[[], Sink]:
    return lambda: Sink(bus.EventProducer(kafka_settings.bootstrap_servers), ingest_topics)
