"""The at-least-once bookkeeping (moved with ``OffsetTracker`` from the notifier to ``bus``)."""

from __future__ import annotations

from flinktrade.bus.offsets import OffsetTracker, RecordRef, SeenIds


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
