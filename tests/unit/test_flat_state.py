"""The flat indicator state (``flinktrade._exact.FlatState``): the C form of ``IndicatorState``.

Its values are the Python calculators' floats bit for bit, its snapshot is their snapshot tuple,
and whatever its C numbers cannot hold (a window value too wide for the fixed-width sums, an
argument that is not a float) moves it to an ``IndicatorState`` before the bar, so the values
never differ. These tests drive the same bars through both forms and compare every value's
``repr`` (a float that differs in the last bit, or a ``None`` for a value, fails them)."""

from __future__ import annotations

import copy
import math
import os
import pickle
import random
from typing import Any

import pytest

from flinktrade import accel, indicators
from flinktrade.config import AnalyticsSettings
from flinktrade.indicators import DEFAULT_INDICATORS, IndicatorEngine, IndicatorState
from flinktrade.pipeline.analytics import SymbolModel

pytestmark = pytest.mark.skipif(
    os.environ.get(accel.PURE_ENV, "") not in ("", "0"), reason="pure Python requested"
)

EXTRA = (
    "sma_2",
    "ema_3",
    "rsi_2",
    "bb_upper_3_1_5",
    "bb_lower_30_3",
    "bb_middle_4_2",
    "macd_2_3_1",
    "macd_hist_5_8_3",
    "macd_signal_5_8_3",
    "atr_1",
    "vwap_1",
    "volatility_2",
    "volume_z_2",
    "sma_120",
)


@pytest.fixture(scope="module", autouse=True)
def built() -> None:
    """``make setup`` builds the C kernel, so a checkout without it fails here."""
    assert accel.status()["compiled"], accel.status()["reason"]
    assert indicators._FlatEngine is not None


def _bars(seed: int, n: int) -> list[tuple[float, float, float, float, float | None]]:
    """(high, low, close, volume, vwap): a random walk in cents or finer, flat stretches (sds of
    exactly 0), bars without VWAP, zero volumes and volume spikes."""
    rng = random.Random(seed)
    price, out = rng.uniform(1, 500), []
    for i in range(n):
        price *= math.exp(rng.gauss(0, 0.01 if i % 50 else 0.08))
        flat = 100 <= i % 400 < 140
        close = 100.0 if flat else max(round(price, rng.choice((2, 2, 4, 6))), 0.01)
        high = close + (0.0 if flat else rng.random())
        low = max(close - (0.0 if flat else rng.random() / 2), 0.005)
        vwap = None if rng.random() < 0.2 else round((high + low) / 2, 4)
        volume = 100.0 if flat else float(rng.randint(0, 5000) * (30 if rng.random() < 0.02 else 1))
        out.append((high, low, close, volume, vwap))
    return out


def _same(a: Any, b: Any) -> bool:
    return [repr(v) for v in a.items()] == [repr(v) for v in b.items()]


def _random_names(rng: random.Random) -> set[str]:
    names: set[str] = set()
    for _ in range(rng.randint(1, 8)):
        kind = rng.choice(
            ("sma", "ema", "rsi", "atr", "vwap", "volatility", "volume_z", "bb", "macd")
        )
        n = rng.randint(2, 60)
        if kind == "bb":
            band = rng.choice(("upper", "lower", "middle"))
            names.add(f"bb_{band}_{n}_{rng.choice(('1', '2', '2_5', '0_5'))}")
        elif kind == "macd":
            fast = rng.randint(2, 12)
            line = rng.choice(("", "_signal", "_hist"))
            names.add(f"macd{line}_{fast}_{fast + rng.randint(1, 20)}_{rng.randint(1, 9)}")
        else:
            names.add(f"{kind}_{n}")
    return names


def test_the_default_set_lives_in_a_flat_state_and_gives_the_calculators_floats() -> None:
    engine = IndicatorEngine((*DEFAULT_INDICATORS, *EXTRA))
    flat, python = engine.start(), engine._start_python()
    assert type(flat).__name__ == "FlatState" and type(python) is IndicatorState
    for i, bar in enumerate(_bars(1, 1500)):
        assert _same(engine.advance(flat, *bar), engine.advance(python, *bar)), i
        assert engine.snapshot(flat) == engine.snapshot(python), i
    assert flat.py is None  # never left C
    assert engine.advance(flat, *bar)["sma_120"] is not None


@pytest.mark.parametrize("seed", range(6))
def test_any_indicator_set_gives_the_same_floats_and_snapshots(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(8):
        engine = IndicatorEngine(_random_names(rng))
        flat, python = engine.start(), engine._start_python()
        for i, bar in enumerate(_bars(rng.randrange(10**6), rng.randint(20, 300))):
            assert _same(engine.advance(flat, *bar), engine.advance(python, *bar)), (
                engine.names,
                i,
            )
            assert engine.snapshot(flat) == engine.snapshot(python)
        assert flat.py is None


def test_a_value_too_wide_for_the_c_sums_moves_the_state_to_python_before_the_bar() -> None:
    """A volume of 1e30 beside fractional prices x volumes needs more bits than the C kernel's
    fixed integers: the state goes on as an ``IndicatorState`` from its exact numbers."""
    engine = IndicatorEngine(DEFAULT_INDICATORS)
    flat, python = engine.start(), engine._start_python()
    bars = _bars(2, 130)  # the wide volume still in the 20-bar windows at the end
    bars[120] = (*bars[120][:3], 1e30, bars[120][4])
    for i, bar in enumerate(bars):
        assert _same(engine.advance(flat, *bar), engine.advance(python, *bar)), i
        assert engine.snapshot(flat) == engine.snapshot(python)
        assert (flat.py is None) == (i < 120), i
    restored = engine.restore(pickle.loads(pickle.dumps(engine.snapshot(flat))))
    assert type(restored) is IndicatorState  # the C numbers cannot hold it: Python it stays
    copied = copy.deepcopy(flat)
    for i, bar in enumerate(_bars(3, 50)):
        expected = engine.advance(python, *bar)
        for state in (flat, restored, copied):
            assert _same(engine.advance(state, *bar), expected), i
    # out of the windows, the numbers fit the C sums again: a restore is flat once more
    assert type(engine.restore(engine.snapshot(flat))).__name__ == "FlatState"


def test_the_c_engine_refuses_what_is_not_a_float_and_changes_nothing() -> None:
    """``IndicatorEngine.advance`` hands it floats (compiled, its parameters are floats); given
    anything else the C engine answers None and the state is as it was (the engine would go on
    in Python)."""
    engine = IndicatorEngine(DEFAULT_INDICATORS)
    state = engine.start()
    for bar in _bars(4, 30):
        engine.advance(state, *bar)
    before = engine.snapshot(state)
    for args in ((101, 99.0, 100.0, 10.0, None), (101.0, 99.0, 100.0, 10, None),
                 (101.0, 99.0, 100.0, 10.0, 100)):  # fmt: skip
        assert engine._flat.advance(state, *args) is None
        assert engine.snapshot(state) == before and state.py is None


def test_copies_are_independent_and_pickles_restore_in_either_form() -> None:
    engine = IndicatorEngine((*DEFAULT_INDICATORS, *EXTRA))
    live = engine.start()
    bars = _bars(5, 400)
    for bar in bars[:200]:
        engine.advance(live, *bar)
    deep, shallow = copy.deepcopy(live), copy.copy(live)
    pickled = pickle.loads(pickle.dumps(live))
    assert type(pickled) is type(live)
    assert pickle.dumps(pickled) == pickle.dumps(live)
    as_python = engine._python_view(live)
    for i, bar in enumerate(bars[200:]):
        expected = engine.advance(live, *bar)
        for other in (deep, shallow, pickled, as_python):
            assert _same(engine.advance(other, *bar), expected), i
    assert engine.snapshot(deep) == engine.snapshot(live)
    live_calcs = live.calcs  # the Python calculators' view is a copy
    live_calcs.clear()
    assert len(live.calcs) == len(engine._proto.calcs)


def test_a_state_of_another_indicator_set_starts_afresh_as_the_calculators_do() -> None:
    small, large = IndicatorEngine(["sma_2", "rsi_3"]), IndicatorEngine(["sma_2", "ema_3"])
    flat, python = small.start(), small._start_python()
    for bar in _bars(6, 10):
        small.advance(flat, *bar)
        small.advance(python, *bar)
    for i, bar in enumerate(_bars(7, 10)):
        assert _same(large.advance(flat, *bar), large.advance(python, *bar)), i
    assert large.snapshot(flat) == large.snapshot(python)


def test_the_model_keeps_its_indicators_in_a_flat_state() -> None:
    model = SymbolModel([], AnalyticsSettings())
    assert type(model.initial_state()["ind"]).__name__ == "FlatState"


def test_a_snapshot_whose_closes_do_not_match_its_bar_count_is_left_to_python() -> None:
    """The C code reads ``closes[-n]`` without a check; a snapshot with fewer closes than its bars
    (garbage that still has the right shape) is never made a ``FlatState``: the Python calculators
    take it, and fail on it as they always did, with an exception the job's operator contains."""
    engine = IndicatorEngine(DEFAULT_INDICATORS)
    live = engine.start()
    for bar in _bars(8, 100):
        engine.advance(live, *bar)
    snap = engine.snapshot(live)
    short = (*snap[:9], snap[9][-80:], snap[10])  # the last 10 closes of 50
    restored = engine.restore(short)
    assert type(restored) is IndicatorState
    with pytest.raises(IndexError):
        engine.advance(restored, *_bars(9, 1)[0])


def test_a_snapshot_with_its_closes_as_a_tuple_as_written_before_restores_flat() -> None:
    """Snapshots carried the closes as a tuple of floats before the flat state packed them: such a
    stored state restores to the same flat state, and goes on alike."""
    engine = IndicatorEngine((*DEFAULT_INDICATORS, *EXTRA))
    live = engine.start()
    bars = _bars(10, 300)
    for bar in bars[:200]:
        engine.advance(live, *bar)
    snap = engine.snapshot(live)
    assert type(snap[9]) is bytes and len(snap[9]) == 8 * 120  # sma_120's closes, packed
    older = (*snap[:9], tuple(indicators.unpack(snap[9])), snap[10])
    restored = engine.restore(pickle.loads(pickle.dumps(older)))
    assert type(restored).__name__ == "FlatState"
    assert engine.snapshot(restored) == snap
    for bar in bars[200:]:
        assert _same(engine.advance(restored, *bar), engine.advance(live, *bar))
