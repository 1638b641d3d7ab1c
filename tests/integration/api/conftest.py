"""An API server per test module, on the session's real broker, over its own topics seeded with
bars, signals, alerts, orders, fills and news."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_helpers import ApiEnv, seed
from pydantic import SecretStr

from flinktrade import bus
from flinktrade.api.server import start_in_thread
from flinktrade.api.settings import ApiSettings, ApiTopics
from flinktrade.config import KafkaSettings, Settings
from flinktrade.infra.kafka import LocalKafka


@pytest.fixture(scope="module")
def api_env(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    suffix = uuid.uuid4().hex[:8]
    api_topics = ApiTopics(**{k: f"api.{k}.{suffix}" for k in ApiTopics.model_fields})
    kafka_settings = KafkaSettings(bootstrap_servers=kafka.bootstrap_servers, partitions=2)
    names = list(api_topics.by_kind().values())
    bus.ensure_topics(kafka_settings, names)
    seeded = seed()
    producer = bus.EventProducer(kafka.bootstrap_servers)
    for kind, items in (
        ("bars", [b for bars in seeded.bars.values() for b in bars]),
        ("signals", seeded.signals),
        ("alerts", seeded.alerts),
        ("orders", seeded.orders),
        ("fills", seeded.fills),
        ("news", seeded.news),
    ):
        for item in items:
            producer.send(item, getattr(api_topics, kind))
    producer.flush()
    state_dir: Path = tmp_path_factory.mktemp("api-state")
    settings = Settings(
        state_dir=state_dir,
        kafka=kafka_settings,
        api=ApiSettings(token=SecretStr(uuid.uuid4().hex), topics=api_topics, max_limit=1000),
    )
    server = start_in_thread(settings, "127.0.0.1", 0)
    try:
        env = ApiEnv(server, settings, seeded, producer)
        with env.client() as client:
            bus.wait_for(
                lambda: client.get("/health", headers=env.auth).json()["feed"]["caught_up"],
                timeout_s=30,
                what="the API feed to read the seeded topics",
            )
        yield env
    finally:
        server.stop()
        admin = bus.admin(kafka.bootstrap_servers)  # held: the futures die with the client
        for future in admin.delete_topics(names, request_timeout=30).values():
            future.result()
