"""Indicator parity with TA-Lib, bar by bar, warm-up included; JSON and live state round trips;
the exact rolling sums the standard deviations use."""

from __future__ import annotations

import json
import math
import pickle
from fractions import Fraction

import numpy as np
import pytest
import talib

from flinktrade.errors import ConfigError
from flinktrade.indicators import DEFAULT_INDICATORS, BarInput, ExactWindow, IndicatorEngine

TOLERANCE = 1e-9

EXTRA = (
    "sma_2",
    "ema_2",
    "ema_50",
    "rsi_2",
    "rsi_30",
    "bb_upper_5_1",
    "bb_middle_5_1",
    "bb_lower_5_1",
    "bb_upper_10_2_5",
    "bb_lower_10_0_5",
    "macd_3_10_1",
    "macd_signal_5_35_5",
    "macd_hist_5_35_5",
    "atr_1",
    "atr_5",
    "vwap_1",
    "vwap_7",
    "volatility_5",
    "volume_z_5",
)
NAMES = tuple(DEFAULT_INDICATORS) + EXTRA


def make_bars(seed: int, n: int = 700, scale: float = 100.0) -> dict[str, np.ndarray]:
    """A random walk in cents with flat stretches, gaps, flat and zero volume, missing VWAPs."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.004, n)
    steps[rng.random(n) < 0.02] *= 15  # gaps
    close = scale * np.exp(np.cumsum(steps))
    for start in rng.integers(n // 10, n - n // 10, 4):  # flat stretches longer than the windows
        close[start : start + int(rng.integers(5, 70))] = close[start]
    tick = 0.01 if scale >= 1 else 0.0001
    close = np.maximum(np.round(close / tick) * tick, tick)
    spread = np.round(rng.uniform(0, 0.004, n) * scale / tick) * tick
    high = close + spread * rng.random(n)
    low = np.maximum(close - spread * rng.random(n), tick / 2)
    flat = close == np.roll(close, 1)
    high[flat], low[flat] = close[flat], close[flat]
    volume = rng.integers(100, 20_000, n).astype(float)
    volume[n // 5 : n // 5 + 40] = 5_000.0  # flat volume: z-score undefined
    volume[n // 2 : n // 2 + 10] = 0.0  # no trades: VWAP undefined over short windows
    vwap = np.round((close + np.roll(close, 1)) / 2 / tick) * tick
    vwap[0] = close[0]
    vwap[rng.random(n) < 0.2] = np.nan  # provider gave none
    return {
        "open": np.roll(close, 1),
        "high": high,
        "low": low,
        "close": close,
        "volume": volume,
        "vwap": vwap,
    }


def bar_inputs(bars: dict[str, np.ndarray]) -> list[BarInput]:
    return [
        BarInput(
            float(bars["open"][i]),
            float(bars["high"][i]),
            float(bars["low"][i]),
            float(bars["close"][i]),
            float(bars["volume"][i]),
            None if math.isnan(bars["vwap"][i]) else float(bars["vwap"][i]),
        )
        for i in range(len(bars["close"]))
    ]


def run(engine: IndicatorEngine, inputs: list[BarInput]) -> list[dict[str, float | None]]:
    state = engine.initial_state()
    rows = []
    for bar in inputs:
        values, state = engine.update(state, bar)
        rows.append(values)
    return rows


def shifted_by_one(values: np.ndarray) -> np.ndarray:
    out = np.full_like(values, np.nan)
    out[1:] = values[:-1]
    return out


def reference(name: str, b: dict[str, np.ndarray]) -> np.ndarray:
    """The expected series for ``name``: TA-Lib, or numpy where TA-Lib has no such indicator."""
    c, h, lo, v = b["close"], b["high"], b["low"], b["volume"]
    kind = name.partition("_")[0]
    parts = name.split("_")
    if name.startswith("bb_"):
        n, k = int(parts[2]), float(".".join(parts[3:]))
        upper, middle, lower = talib.BBANDS(c, n, k, k, 0)
        return {"upper": upper, "middle": middle, "lower": lower}[parts[1]]
    if name.startswith("macd"):
        f, s, g = (int(p) for p in parts[-3:])
        line, signal, hist = talib.MACD(c, f, s, g)
        return {"signal": signal, "hist": hist}.get(parts[1], line)
    n = int(parts[-1])
    if name.startswith("volume_z_"):
        mean = shifted_by_one(talib.SMA(v, n))
        sd = shifted_by_one(talib.STDDEV(v, n, 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sd > 0, (v - mean) / sd, np.nan)
    if name.startswith("volatility_"):
        log_returns = np.full_like(c, np.nan)
        log_returns[1:] = np.log(c[1:] / c[:-1])
        return talib.STDDEV(log_returns, n, 1)
    if kind == "vwap":
        price = np.where(np.isnan(b["vwap"]), c, b["vwap"])
        out = np.full_like(c, np.nan)
        for i in range(n - 1, len(c)):
            volume = v[i - n + 1 : i + 1].sum()
            if volume > 0:
                out[i] = (price[i - n + 1 : i + 1] * v[i - n + 1 : i + 1]).sum() / volume
        return out
    if kind == "atr":
        return talib.ATR(h, lo, c, n)
    return {"sma": talib.SMA, "ema": talib.EMA, "rsi": talib.RSI}[kind](c, n)


def assert_parity(
    name: str, rows: list[dict[str, float | None]], expected: np.ndarray, label: str
) -> None:
    got = np.array([np.nan if r[name] is None else r[name] for r in rows])
    defined, expected_defined = ~np.isnan(got), ~np.isnan(expected)
    assert defined.any(), f"{label} {name}: never defined"
    mismatch = np.flatnonzero(defined != expected_defined)
    assert mismatch.size == 0, (
        f"{label} {name}: defined/undefined differs from the reference first at bar {mismatch[0]}"
        f" (ours {got[mismatch[0]]}, reference {expected[mismatch[0]]})"
    )
    diff = np.abs(got[defined] - expected[defined])
    worst = int(np.argmax(diff))
    assert diff[worst] <= TOLERANCE, (
        f"{label} {name}: off by {diff[worst]:.3g} at bar {np.flatnonzero(defined)[worst]}"
    )


@pytest.mark.parametrize(
    ("seed", "scale"), [(1, 100.0), (2, 100.0), (3, 25.0), (4, 3000.0), (5, 0.5)]
)
def test_every_indicator_matches_the_reference_bar_by_bar(seed: int, scale: float) -> None:
    bars = make_bars(seed, scale=scale)
    rows = run(IndicatorEngine(NAMES), bar_inputs(bars))
    for name in NAMES:
        assert_parity(name, rows, reference(name, bars), f"seed {seed}")


def test_the_reference_series_exercise_the_edge_cases() -> None:
    """Guard the generator: flat windows, zero volume and missing VWAPs really occur."""
    bars = make_bars(1)
    rows = run(
        IndicatorEngine(["bb_upper_20_2", "bb_middle_20_2", "volume_z_20", "vwap_7"]),
        bar_inputs(bars),
    )
    assert any(r["bb_upper_20_2"] == r["bb_middle_20_2"] for r in rows[19:])  # sd 0
    assert any(r["volume_z_20"] is None for r in rows[20:])  # flat volume
    assert any(r["vwap_7"] is None for r in rows[6:])  # no volume at all
    assert np.isnan(bars["vwap"]).sum() > 50


def test_warm_up_lengths_match_talib_lookbacks() -> None:
    rows = run(IndicatorEngine(DEFAULT_INDICATORS), bar_inputs(make_bars(7, n=80)))
    first = {
        name: next(i for i, r in enumerate(rows) if r[name] is not None)
        for name in DEFAULT_INDICATORS
    }
    assert first == {
        "sma_20": 19,
        "sma_50": 49,
        "ema_12": 11,
        "ema_26": 25,
        "rsi_14": 14,
        "bb_upper_20_2": 19,
        "bb_middle_20_2": 19,
        "bb_lower_20_2": 19,
        "macd_12_26_9": 33,
        "macd_signal_12_26_9": 33,
        "macd_hist_12_26_9": 33,
        "atr_14": 14,
        "vwap_20": 19,
        "volatility_20": 20,
        "volume_z_20": 20,
    }


def test_state_survives_a_json_round_trip_mid_stream() -> None:
    engine = IndicatorEngine(NAMES)
    inputs = bar_inputs(make_bars(11, n=400))
    straight = run(engine, inputs)
    state = engine.initial_state()
    resumed = []
    for i, bar in enumerate(inputs):
        if i == 200:
            state = json.loads(json.dumps(state))
        values, state = engine.update(state, bar)
        resumed.append(values)
    assert resumed == straight  # identical, not merely close


def test_update_does_not_mutate_the_state_it_is_given() -> None:
    engine = IndicatorEngine(NAMES)
    state = engine.initial_state()
    inputs = bar_inputs(make_bars(12, n=60))
    for bar in inputs[:59]:
        _, state = engine.update(state, bar)
    before = json.dumps(state)
    first = engine.update(state, inputs[59])
    assert json.dumps(state) == before
    assert engine.update(state, inputs[59]) == first


def test_state_size_is_bounded_by_the_window() -> None:
    engine = IndicatorEngine(DEFAULT_INDICATORS)
    inputs = bar_inputs(make_bars(13, n=700))
    state = engine.initial_state()
    sizes = []
    for bar in inputs:
        _, state = engine.update(state, bar)
        sizes.append(len(json.dumps(state)))
    assert max(sizes[200:]) <= max(sizes[60:100]) * 1.2


def test_names_are_sorted_and_deduplicated() -> None:
    engine = IndicatorEngine(["sma_5", "ema_3", "sma_5"])
    assert engine.names == ("ema_3", "sma_5")
    values, _ = engine.update(engine.initial_state(), BarInput(1, 1, 1, 1, 1, None))
    assert values == {"ema_3": None, "sma_5": None}


@pytest.mark.parametrize(
    "name",
    [
        "sma",
        "sma_0",
        "sma_1",
        "sma_05",
        "smaa_5",
        "wma_5",
        "bb_upper_20",
        "bb_upper_20_0",
        "bb_upper_20_2_50",
        "bb_side_20_2",
        "macd_26_12_9",
        "macd_12_12_9",
        "macd_12_26_0",
        "macd_12_26",
        "rsi_100001",
        "SMA_20",
        " sma_20",
    ],
)
def test_bad_names_are_a_config_error_that_shows_the_grammar(name: str) -> None:
    with pytest.raises(ConfigError, match="sma_N"):
        IndicatorEngine(["sma_20", name])


def test_a_state_from_another_indicator_set_restarts_the_warm_up() -> None:
    old = IndicatorEngine(["sma_3"])
    state = old.initial_state()
    for close in (1.0, 2.0, 3.0, 4.0):
        _, state = old.update(state, BarInput(close, close, close, close, 1.0, None))
    new = IndicatorEngine(["sma_3", "ema_3"])
    values, _ = new.update(state, BarInput(5.0, 5.0, 5.0, 5.0, 1.0, None))
    assert values == {"ema_3": None, "sma_3": None}


def test_bad_bars_are_rejected() -> None:
    engine = IndicatorEngine(["sma_2"])
    with pytest.raises(ValueError, match="finite"):
        engine.update(engine.initial_state(), BarInput(1, 1, 1, math.nan, 1, None))
    with pytest.raises(ValueError, match="non-positive"):
        engine.update(engine.initial_state(), BarInput(1, 1, 1, 0.0, 1, None))


def test_hand_computed_values_on_a_tiny_series() -> None:
    """A check independent of TA-Lib: SMA, EMA seed, VWAP and volume z by hand."""
    engine = IndicatorEngine(["sma_3", "ema_3", "vwap_2", "volume_z_2"])
    state = engine.initial_state()
    rows = []
    for close, volume, vwap in [
        (1.0, 10.0, None),
        (2.0, 30.0, 2.5),
        (3.0, 20.0, None),
        (6.0, 45.0, 5.0),
    ]:
        values, state = engine.update(state, BarInput(close, close, close, close, volume, vwap))
        rows.append(values)
    assert rows[1]["vwap_2"] == pytest.approx((1 * 10 + 2.5 * 30) / 40)
    assert rows[2]["sma_3"] == pytest.approx(2.0)
    assert rows[2]["ema_3"] == pytest.approx(2.0)  # seeded with the SMA
    assert rows[3]["ema_3"] == pytest.approx(2.0 + (6.0 - 2.0) * 0.5)
    assert rows[2]["volume_z_2"] == pytest.approx((20 - 20) / 10)
    assert rows[3]["volume_z_2"] == pytest.approx((45 - 25) / 5)


def test_the_live_state_gives_the_json_path_values_and_pickles_mid_stream() -> None:
    engine = IndicatorEngine(NAMES)
    inputs = bar_inputs(make_bars(14, n=400))
    by_json = run(engine, inputs)
    live = engine.start()
    by_live = []
    for i, b in enumerate(inputs):
        if i == 170:
            live = pickle.loads(pickle.dumps(live))
        if i == 260:
            live = engine.from_json(json.loads(json.dumps(engine.to_json(live))))
        by_live.append(engine.advance(live, b.high, b.low, b.close, b.volume, b.vwap))
    assert by_live == by_json  # identical, not merely close


def test_a_bad_bar_leaves_the_live_state_untouched() -> None:
    engine = IndicatorEngine(DEFAULT_INDICATORS)
    live = engine.start()
    for b in bar_inputs(make_bars(15, n=30)):
        engine.advance(live, b.high, b.low, b.close, b.volume, b.vwap)
    before = pickle.dumps(live)
    for bad in (
        (1.0, 1.0, math.inf, 1.0, None),
        (1.0, 1.0, 1.0, -1.0, None),
        (1, 1, 1, 1, math.nan),
    ):
        with pytest.raises(ValueError):
            engine.advance(live, *bad)
    assert pickle.dumps(live) == before


def exact_variance(values: list[float]) -> Fraction:
    n = len(values)
    mean = sum(map(Fraction, values)) / n
    return sum((Fraction(v) - mean) ** 2 for v in values) / n


def test_exact_window_sums_are_exact_whatever_the_magnitudes() -> None:
    rng = np.random.default_rng(3)
    values = list(rng.normal(0, 1, 300) * 10.0 ** rng.integers(-12, 6, 300))  # exponents vary
    values[100:130] = [values[99]] * 30  # a flat stretch longer than the window
    window = ExactWindow(20)
    for i, value in enumerate(values):
        window.push(value)
        last = values[max(0, i - 19) : i + 1]
        assert len(window) == len(last)
        assert window.total() == float(sum(map(Fraction, last)))  # correctly rounded, as fsum
        assert window.mean() == float(sum(map(Fraction, last)) / len(last))
        assert window.variance() == float(exact_variance(last))
    assert window.variance() >= 0
    flat = ExactWindow(20)
    for _ in range(25):
        flat.push(0.1)
    assert flat.variance() == 0.0  # exactly, so sd-based indicators see a flat window
