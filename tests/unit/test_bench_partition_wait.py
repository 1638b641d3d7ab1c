"""``bench.partition_wait``: the wait of a per-partition watermark, on schedules worked by hand."""

from __future__ import annotations

from bench import partition_wait as pw


def test_the_wait_runs_from_the_first_trade_past_the_bound_to_the_last_partitions_one() -> None:
    # minute 0 closes at 60,000 + 2,000: records 2 (p0), 3 (p0), 4 (p1) reach it; with two
    # partitions the set is complete at record 4: two periods after record 2.
    event_ts = [10_000, 61_000, 62_000, 62_500, 63_000, 122_000, 122_100]
    partitions = [0, 1, 0, 0, 1, 1, 0]
    assert pw.waits(event_ts, partitions, 5.0, partition_count=2) == [10.0, 5.0]


def test_a_minute_end_the_schedule_never_completes_is_left_out() -> None:
    assert pw.waits([10_000, 62_000, 63_000], [0, 0, 0], 1.0, partition_count=2) == []
    assert pw.waits([], [], 1.0) == []
