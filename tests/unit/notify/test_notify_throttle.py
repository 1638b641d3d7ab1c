"""Pacing (pure, with a hand-driven clock) and the at-least-once bookkeeping."""

from __future__ import annotations

import pytest

from flinktrade.notify.offsets import OffsetTracker, RecordRef, SeenIds
from flinktrade.notify.throttle import Throttle


def test_first_item_goes_at_once_and_a_burst_waits_for_the_next_slot() -> None:
    throttle: Throttle[int] = Throttle(1.0)
    assert throttle.wait_s(0.0) is None
    throttle.add(1)
    assert throttle.take(0.0) == [1]
    throttle.sent(0.1)
    for i in range(2, 502):
        throttle.add(i)
    assert throttle.wait_s(0.5) == pytest.approx(0.6)
    assert throttle.take(1.0) == []  # 0.9 s after the last accepted message
    assert throttle.take(1.1) == list(range(2, 502))
    assert len(throttle) == 0


def test_failed_batch_goes_back_in_front_and_waits() -> None:
    throttle: Throttle[str] = Throttle(1.0)
    throttle.add("a")
    throttle.add("b")
    batch = throttle.take(0.0)
    throttle.add("c")
    throttle.retry(batch, at=5.0)
    assert throttle.take(4.9) == []
    assert throttle.take(5.0) == ["a", "b", "c"]


def test_retry_never_shortens_the_pacing() -> None:
    throttle: Throttle[str] = Throttle(1.0)
    throttle.sent(10.0)
    throttle.retry(["a"], at=10.2)
    assert throttle.wait_s(10.5) == 0.5


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
