"""The consumer builder's configuration: every choice set explicitly, one setting per argument."""

from __future__ import annotations

import pytest
from confluent_kafka import TopicPartition

from flinktrade.bus.consumer import consumer_config, make_consumer, unique_group_id
from flinktrade.config import KafkaSettings


def test_defaults_are_explicit() -> None:
    assert consumer_config("127.0.0.1:1", "g") == {
        "bootstrap.servers": "127.0.0.1:1",
        "group.id": "g",
        "auto.offset.reset": "latest",
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": True,
    }


def test_executor_style_choices() -> None:
    conf = consumer_config(
        KafkaSettings(bootstrap_servers="127.0.0.1:2"),
        "exec",
        start_from="earliest",
        read_committed=False,
        auto_commit=True,
        store_offsets=False,
        commit_interval_ms=1000,
        instance_id="exec-1",
        extra={"session.timeout.ms": 10_000, "auto.offset.reset": "latest"},
    )
    assert conf == {
        "bootstrap.servers": "127.0.0.1:2",
        "group.id": "exec",
        "auto.offset.reset": "latest",  # extra wins
        "isolation.level": "read_uncommitted",
        "enable.auto.commit": True,
        "enable.auto.offset.store": False,
        "auto.commit.interval.ms": 1000,
        "group.instance.id": "exec-1",
        "session.timeout.ms": 10_000,
    }


def test_unique_group_ids_differ_and_keep_the_prefix() -> None:
    a, b = unique_group_id("flinktrade-api"), unique_group_id("flinktrade-api")
    assert a != b
    assert a.startswith("flinktrade-api-") and b.startswith("flinktrade-api-")


def test_subscribe_and_assign_together_is_refused() -> None:
    with pytest.raises(ValueError, match="not both"):
        make_consumer("127.0.0.1:1", "g", topics=["t"], assignment=[TopicPartition("t", 0, 0)])
