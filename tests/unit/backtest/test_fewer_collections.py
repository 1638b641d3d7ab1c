"""``engine.fewer_collections`` raises the young generation's threshold for its body only."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from flinktrade.backtest.engine import FEWER_COLLECTIONS, fewer_collections


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    """A known starting point, restored after the test whatever it did."""
    before = gc.get_threshold()
    gc.set_threshold(700, 11, 12)
    yield gc.get_threshold()
    gc.set_threshold(*before)


def test_the_threshold_is_raised_inside_and_restored_after(
    thresholds: tuple[int, int, int],
) -> None:
    with fewer_collections():
        assert gc.get_threshold() == (FEWER_COLLECTIONS, *thresholds[1:])
    assert gc.get_threshold() == thresholds


def test_the_threshold_is_restored_when_the_body_raises(
    thresholds: tuple[int, int, int],
) -> None:
    with pytest.raises(KeyError), fewer_collections(9_000):
        assert gc.get_threshold()[0] == 9_000
        raise KeyError("boom")
    assert gc.get_threshold() == thresholds


def test_a_higher_threshold_already_set_is_kept(thresholds: tuple[int, int, int]) -> None:
    gc.set_threshold(FEWER_COLLECTIONS * 2, *thresholds[1:])
    with fewer_collections():
        assert gc.get_threshold()[0] == FEWER_COLLECTIONS * 2
    assert gc.get_threshold() == (FEWER_COLLECTIONS * 2, *thresholds[1:])


def test_nesting_restores_each_level(thresholds: tuple[int, int, int]) -> None:
    with fewer_collections(1_000):
        with fewer_collections(5_000):
            assert gc.get_threshold()[0] == 5_000
        assert gc.get_threshold()[0] == 1_000
    assert gc.get_threshold() == thresholds


def test_garbage_is_still_collected_inside(thresholds: tuple[int, int, int]) -> None:
    """Cycles made inside the body are collected there once the raised threshold is passed."""
    collected: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "stop":
            collected.append(info["generation"])

    gc.callbacks.append(count)
    try:
        with fewer_collections(2_000):
            for _ in range(20_000):
                cycle: list[object] = []
                cycle.append(cycle)
    finally:
        gc.callbacks.remove(count)
    assert collected
