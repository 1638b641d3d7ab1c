"""The at-least-once bookkeeping (moved with ``OffsetTracker`` from the notifier to ``bus``)."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from flinktrade.bus import offsets
from flinktrade.bus.offsets import OffsetTracker, RecordRef, SeenIds
from flinktrade.errors import TransientError


class _Admin:
    """An admin client whose offset lookups fail with ``errors`` (one per call) before they
    answer ``(offset, timestamp)`` per partition."""

    def __init__(self, errors: list[int], answers: list[tuple[int, int]]) -> None:
        self.errors, self.answers, self.calls = list(errors), answers, 0

    def list_topics(self, topic: str, timeout: float) -> Any:
        partitions = dict.fromkeys(range(len(self.answers)))
        meta = SimpleNamespace(error=None, partitions=partitions)
        return SimpleNamespace(topics={topic: meta})

    def list_offsets(self, asked: dict[Any, Any], request_timeout: float) -> dict[Any, Any]:
        self.calls += 1
        futures: dict[Any, Future[Any]] = {}
        for tp in asked:
            future: Future[Any] = Future()
            if self.errors:
                future.set_exception(KafkaException(KafkaError(self.errors[0])))
            else:
                offset, ts = self.answers[tp.partition]
                future.set_result(SimpleNamespace(offset=offset, timestamp=ts))
            futures[tp] = future
        if self.errors:
            self.errors.pop(0)
        return futures


def test_the_newest_timestamp_waits_out_a_new_topics_missing_leader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Right after a topic is created its partitions answer "not leader" for a moment (seen in a
    loaded test run); the lookup asks again until they answer, and an empty partition (offset
    -1) holds no timestamp."""
    client = _Admin(
        [KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE],
        [(-1, -1), (4, 9_000)],
    )
    monkeypatch.setattr(offsets, "admin", lambda servers: client)
    monkeypatch.setattr(offsets.time, "sleep", lambda s: None)
    assert offsets.max_timestamp("b:9092", "t") == 9_000
    assert client.calls == 3


def test_the_newest_timestamp_gives_up_as_a_transient_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    still = _Admin([KafkaError.NOT_LEADER_FOR_PARTITION] * 1_000, [(4, 9_000)])
    monkeypatch.setattr(offsets, "admin", lambda servers: still)
    with pytest.raises(TransientError, match="newest timestamp of t"):
        offsets.max_timestamp("b:9092", "t", timeout_s=0.3)
    refused = _Admin([KafkaError.TOPIC_AUTHORIZATION_FAILED], [(4, 9_000)])
    monkeypatch.setattr(offsets, "admin", lambda servers: refused)
    with pytest.raises(TransientError):  # not worth asking again: at once
        offsets.max_timestamp("b:9092", "t", timeout_s=30)
    assert refused.calls == 1


def test_commit_position_is_the_oldest_open_record() -> None:
    tracker = OffsetTracker()
    refs = [RecordRef("alerts", 0, o) for o in range(5)]
    tracker.add(refs[0], 1)
    tracker.add(refs[1], 2)  # two destinations
    tracker.add(refs[2], 0)  # a repeat: nothing to wait for
    tracker.add(refs[3], 1)
    assert tracker.to_commit() == {("alerts", 0): 0}
    tracker.done(refs[0])
    tracker.done(refs[1])
    assert tracker.to_commit() == {("alerts", 0): 1}  # offset 1 still waits for one destination
    tracker.done(refs[3])
    tracker.done(refs[1])
    assert tracker.to_commit() == {("alerts", 0): 4}
    tracker.committed({("alerts", 0): 4})
    assert tracker.to_commit() == {}
    assert tracker.outstanding == 0


def test_partitions_are_independent_and_revoked_ones_are_forgotten() -> None:
    tracker = OffsetTracker()
    tracker.add(RecordRef("a", 0, 10), 1)
    tracker.add(RecordRef("a", 1, 3), 0)
    assert tracker.to_commit() == {("a", 0): 10, ("a", 1): 4}
    assert tracker.to_commit(only=[("a", 1)]) == {("a", 1): 4}
    tracker.forget([("a", 0)])
    tracker.done(RecordRef("a", 0, 10))  # a delivery finishing after the revoke is ignored
    assert tracker.to_commit() == {("a", 1): 4}


def test_seen_ids_drop_repeats_within_capacity() -> None:
    seen = SeenIds(capacity=2)
    assert seen.add("a")
    assert not seen.add("a")
    assert seen.add("b")
    assert seen.add("c")  # "a" falls out
    assert seen.add("a")
