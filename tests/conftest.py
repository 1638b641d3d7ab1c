"""Shared fixtures: one real Kafka broker (KRaft) per test session, on free loopback ports."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flinktrade.bus import delete_topics, ensure_topics
from flinktrade.config import KafkaSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.testing.brokers import broker_settings


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    """A real single-node Kafka 4 broker, started through ``flinktrade infra`` code."""
    state = tmp_path_factory.mktemp("state")
    broker = LocalKafka(broker_settings("768m"), state)
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


# Under pytest-xdist (`make test` runs two workers, `TEST_WORKERS`) a worker takes whole groups:
# one group per test module, so a module's fixtures (its broker, its job run) start once in one
# worker. The tests whose event time runs far ahead of the wall clock or that kill components under a
# deadline (the demo at 600x, the session cluster, the job and broker kills) are one group, so they
# run one after another in one worker and never two of them at once, each beside lighter tests
# (docs/reliability.md, "Test time"). The longest groups are handed out first, so the two workers
# finish close together; the short ones fill in at the end. (xdist's own `loadgroup` marks do not
# group under pytest 9, whose node ids cannot be renamed: hence a scheduler of our own.)
TIMING = "timing-sensitive"
TIMING_SENSITIVE = (
    "tests/integration/cluster/",
    "tests/integration/test_job_faults.py",
    "tests/integration/test_demo_supervision.py",
    "tests/integration/test_cli.py",
)
HEAVY_FIRST = (
    TIMING,
    "tests/integration/execution/test_executor_operator.py",
    "tests/integration/backtest/test_backtest.py",
    "tests/integration/test_bench_smoke.py",
)


def xdist_group_of(nodeid: str) -> str:
    """The worker group of a test, from its node id (or its file's path from the repository)."""
    path = nodeid.split("::", 1)[0]
    if path.startswith(TIMING_SENSITIVE):
        return TIMING
    return path


@pytest.hookimpl(optionalhook=True)  # a hook of xdist's: nothing to check without it
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid)

    return ModuleGroups(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In an xdist worker, the groups of ``HEAVY_FIRST`` first (the scheduler hands groups out in
    collection order); the rest, and a run without xdist, keep the collection order."""
    if hasattr(config, "workerinput"):
        rank = {group: i for i, group in enumerate(HEAVY_FIRST)}
        items.sort(key=lambda item: rank.get(xdist_group_of(item.nodeid), len(rank)))  # stable
