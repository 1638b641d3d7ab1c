"""Pacing, pure, with a hand-driven clock."""

from __future__ import annotations

import pytest

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
