"""The model state's snapshot, the form the job writes to Flink state per bar: a pickle of it and
``restore`` give back a state identical to the live one (byte for byte when pickled whole, and the
same outputs from then on), and a stored value that is not a snapshot of this configuration is
never taken for one."""

from __future__ import annotations

import logging
import math
import pickle
import random
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from flinktrade.config import AnalyticsSettings
from flinktrade.indicators import DEFAULT_INDICATORS, IndicatorEngine, pack, unpack
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, StrategySpec, SymbolModel
from flinktrade.pipeline.operator import STATE_FORMAT, AnalyticsOperator

T0 = 1_704_205_800_000
MINUTE = 60_000
BUILTINS = [
    StrategySpec(name, {})
    for name in ("sma_cross", "rsi_reversion", "bollinger_breakout", "sentiment_momentum")
]
EXTRA = ("vwap_3", "atr_1", "bb_upper_5_0_5", "macd_hist_3_7_2", "ema_2", "volume_z_3")


def stream(seed: int, n: int) -> list[ClosedBar | ScoredNews]:
    """A random walk of bars with volume spikes, price jumps, bars without VWAP and news."""
    rng = random.Random(seed)
    price = 100.0
    out: list[ClosedBar | ScoredNews] = []
    for i in range(n):
        ts = T0 + i * MINUTE
        if rng.random() < 0.05:
            out.append(ScoredNews(f"n{i}", "AAA", ts + 1, rng.uniform(-1, 1), "a story"))
        open_ = price * math.exp(rng.gauss(0, 0.001))
        price *= math.exp(rng.gauss(0, 0.004) * (10 if rng.random() < 0.02 else 1))
        o, c = Decimal(f"{open_:.2f}"), Decimal(f"{price:.4f}")
        h, low = max(o, c) + Decimal("0.03"), min(o, c) - Decimal("0.02")
        volume = rng.randint(0, 5_000) * (20 if rng.random() < 0.02 else 1)
        vwap = None if rng.random() < 0.2 else float((o + c) / 2)
        out.append(ClosedBar("AAA", ts, o, h, low, c, volume, vwap, rng.randint(0, 50)))
    return out


def run(model: SymbolModel, state: dict[str, Any], items: list[Any]) -> list[dict[str, Any]]:
    out: list[Any] = []
    for item in items:
        if isinstance(item, ClosedBar):
            out.extend(model.on_bar(state, item))
        else:
            out.extend(model.on_news(state, item))
    return [{**e.model_dump(), "ingest_ts": 0, "type": type(e).__name__} for e in out]


def through_state(model: SymbolModel, state: dict[str, Any]) -> dict[str, Any]:
    """What the operator writes and a restored task reads back."""
    return model.restore(pickle.loads(pickle.dumps((STATE_FORMAT, model.snapshot(state))))[1])


def test_a_restored_snapshot_is_the_live_state_byte_for_byte_at_every_bar() -> None:
    engine = IndicatorEngine((*DEFAULT_INDICATORS, *EXTRA))
    live = engine.start()
    bars = [b for b in stream(3, 300) if isinstance(b, ClosedBar)]
    restored_once = 0
    for b in bars:
        values = engine.advance(live, float(b.high), float(b.low), float(b.close),
                                float(b.volume), b.vwap)  # fmt: skip
        copy = engine.restore(pickle.loads(pickle.dumps(engine.snapshot(live))))
        assert pickle.dumps(copy) == pickle.dumps(live)  # every slot, every accumulator
        assert any(v is not None for v in values)
        restored_once += 1
    assert restored_once == len(bars) == 300


def test_the_model_restored_from_its_snapshot_every_few_bars_gives_the_same_outputs() -> None:
    settings = AnalyticsSettings(price_jump_z=2.0, volume_spike_z=2.0, gap_pct=0.3)
    model = SymbolModel(BUILTINS, settings)
    items = stream(7, 600)
    straight_state = model.initial_state()
    straight = run(model, straight_state, items)

    state = model.initial_state()
    resumed: list[dict[str, Any]] = []
    for start in range(0, len(items), 37):
        resumed += run(model, state, items[start : start + 37])
        state = through_state(model, state)
    assert resumed == straight
    assert {o["type"] for o in straight} == {"AnalyticsBar", "Alert", "Signal"}
    assert state.keys() == straight_state.keys() and "sent" in state
    assert model.snapshot(state) == model.snapshot(straight_state)  # every value equal
    assert pickle.dumps(state["ind"]) == pickle.dumps(straight_state["ind"])


def test_a_snapshot_shares_no_mutable_object_with_the_state() -> None:
    model = SymbolModel(BUILTINS, AnalyticsSettings())
    state = model.initial_state()
    items = stream(11, 80)
    run(model, state, items[:60])
    frozen = pickle.dumps(model.snapshot(state))
    restored = model.restore(pickle.loads(frozen))
    run(model, state, items[60:])  # the live state moves on
    assert pickle.dumps(model.snapshot(restored)) == frozen  # the restored copy did not
    snap = model.snapshot(restored)
    again = model.restore(snap)
    run(model, again, items[60:])
    assert pickle.dumps(model.snapshot(restored)) == frozen  # nor the snapshot's own values


def _values(value: Any) -> Iterator[Any]:
    """Every value inside ``value``, containers walked (dict keys and values, list/tuple items)."""
    yield value
    items = value.items() if isinstance(value, dict) else ()
    for inner in (
        *(x for kv in items for x in kv),
        *(value if type(value) in (list, tuple) else ()),
    ):
        yield from _values(inner)


def test_a_snapshot_holds_no_decimal_and_one_written_with_a_decimal_close_still_restores() -> None:
    """The last close travels as its exact text (a ``Decimal`` pickles at several times the cost);
    a snapshot written before that, with the ``Decimal`` itself, restores to the same state."""
    model = SymbolModel(BUILTINS, AnalyticsSettings(gap_pct=0.3))
    state = model.initial_state()
    items = stream(5, 120)
    run(model, state, items[:100])
    snap = model.snapshot(state)
    assert isinstance(state["last_close"], Decimal)
    assert not any(isinstance(v, Decimal) for v in _values(snap))
    older = {**snap, "last_close": Decimal(snap["last_close"])}
    for written in (snap, older):
        restored = model.restore(pickle.loads(pickle.dumps(written)))
        assert restored["last_close"] == state["last_close"]
        assert str(restored["last_close"]) == str(state["last_close"])  # the same digits
        assert run(model, restored, items[100:]) == run(model, through_state(model, state),
                                                        items[100:])  # fmt: skip


def _integer_window(snap: tuple[int, bytes], squares: bool) -> tuple[Any, ...]:
    """A window's snapshot as the snapshots before the floats were kept wrote it: ``(shift,
    integers, s1, s2)`` (``s2`` 0 for a window of sums only, ``ExactSum``)."""
    shift, xs = snap[0], unpack(snap[1])
    values = []
    for x in xs:
        num, den = x.as_integer_ratio()
        values.append(num << (shift - (den.bit_length() - 1)))
    return (shift, tuple(values), sum(values), sum(v * v for v in values) if squares else 0)


def _float_window(snap: tuple[int, bytes], squares: bool) -> tuple[Any, ...]:
    """A window's snapshot as written before packing: ``(shift, tuple of floats)``."""
    return (snap[0], tuple(unpack(snap[1])))


def _older_windows(
    engine_snap: tuple[Any, ...], calcs: list[Any], form: Any, names: str
) -> tuple[Any, ...]:
    """An indicator snapshot as written before: every window in ``form`` (``_integer_window`` or
    ``_float_window``) and the indicator set by its names."""
    older = []
    for calc, snap in zip(calcs, engine_snap[10], strict=True):
        kind = type(calc).__name__
        if kind == "_Bollinger":
            older.append((snap[0], form(snap[1], True)))
        elif kind == "_Vwap":
            older.append(tuple(form(w, False) for w in snap))
        elif kind in ("_Volatility", "_VolumeZ"):
            older.append((form(snap[0], True),))
        else:
            older.append(snap)
    return (names, *engine_snap[1:10], tuple(older))


def test_windows_travel_as_packed_floats_and_the_forms_before_still_restore() -> None:
    """A window's snapshot holds its floats (packed) and shift, not the scaled integers of its
    exact sums (an integer of 60-110 bits pickles at several times a float's cost, per bar in the
    job); the restored state is the live one byte for byte, and so is one restored from either
    form snapshots had before: the integers, and the floats as a tuple with the indicator set
    named in full."""
    engine = IndicatorEngine((*DEFAULT_INDICATORS, *EXTRA))
    live = engine.start()
    bars = [b for b in stream(9, 120) if isinstance(b, ClosedBar)]
    for i, b in enumerate(bars):
        engine.advance(live, float(b.high), float(b.low), float(b.close), float(b.volume), b.vwap)
        snap = engine.snapshot(live)
        ints = [v for v in _values(snap) if type(v) is int and abs(v) >= 2**53]
        assert not ints, ints[:3]  # no scaled integer travels
        if i % 10 == 9:
            names = ",".join(engine.names)
            older = _older_windows(snap, live.calcs, _integer_window, names)
            floats = _older_windows(snap, live.calcs, _float_window, names)
            assert older != snap and floats != snap
            for written in (snap, older, floats):
                copy = engine.restore(pickle.loads(pickle.dumps(written)))
                assert pickle.dumps(copy) == pickle.dumps(live)


def test_a_window_pickled_live_before_the_floats_were_kept_restores() -> None:
    """The live state pickled whole (the stored form before snapshots) from before the windows
    kept their floats: the floats are recomputed from the integers, exactly."""
    from flinktrade.indicators import ExactWindow

    window = ExactWindow(3)
    for x in (0.1, 1e-9, 123.456, 7.0):
        window.push(x)
    state = window.__getstate__()
    older = pickle.loads(pickle.dumps({name: v for name, v in state.items() if name != "xs"}))
    restored = ExactWindow.__new__(ExactWindow)
    restored.__setstate__(older)
    assert restored.xs == [1e-9, 123.456, 7.0]
    assert pickle.dumps(restored) == pickle.dumps(window)
    restored.push(2.5)
    window.push(2.5)
    assert (restored.total(), restored.variance()) == (window.total(), window.variance())


def test_another_indicator_sets_snapshot_restores_as_a_fresh_state_never_as_this_ones() -> None:
    small, large = IndicatorEngine(["sma_2"]), IndicatorEngine(["sma_2", "ema_3"])
    live = small.start()
    for close in (1.0, 2.0, 3.0):
        small.advance(live, close, close, close, 10.0, None)
    restored = large.restore(small.snapshot(live))
    assert pickle.dumps(restored) == pickle.dumps(large.start())
    # the same accumulators with other Bollinger bands are another set too
    narrow, wide = IndicatorEngine(["bb_upper_3_1"]), IndicatorEngine(["bb_upper_3_2"])
    live = narrow.start()
    for close in (1.0, 2.0, 4.0):
        narrow.advance(live, close, close, close, 10.0, None)
    assert pickle.dumps(wide.restore(narrow.snapshot(live))) == pickle.dumps(wide.start())


@pytest.mark.parametrize(
    "garbage",
    [
        *((), (42,), [1, 2], None, "wrong-shape", "short-calc", math.inf, math.nan, 1e-7, 3, -1),
        *(b"\x00" * 7, pack([math.nan]), pack([-math.inf]), pack([1e-7]), bytearray(8)),
    ],
)
def test_garbage_is_refused_by_restore(garbage: Any) -> None:
    engine = IndicatorEngine(DEFAULT_INDICATORS)
    snap = engine.snapshot(engine.start())
    with pytest.raises((ValueError, TypeError)):
        engine.restore(_garbled(snap, engine, garbage))


def _garbled(snap: Any, engine: IndicatorEngine, garbage: Any) -> Any:
    """``snap`` (this engine's) spoilt by ``garbage``: a whole value, or a named defect, or what a
    Bollinger window holds."""
    if garbage == "wrong-shape":  # this engine's layout, a value missing
        return snap[:-1]
    if garbage == "short-calc":  # one accumulator without its last value
        return (*snap[:-1], (snap[-1][0][:-1], *snap[-1][1:]))
    if isinstance(garbage, float | int | bytes | bytearray) and not isinstance(garbage, bool):
        # a Bollinger window holding a value it cannot (inf, nan, an int, a float finer than its
        # shift), a negative shift, or packed floats that are not (7 bytes, a bytearray), or
        # are nan, inf, or finer than the shift
        at = [type(c).__name__ for c in engine.start().calcs].index("_Bollinger")
        if isinstance(garbage, bytes | bytearray):
            window: tuple[Any, ...] = (0, garbage)
        else:
            window = (-1, (1.0,)) if garbage == -1 else (0, (garbage,))
        calcs = list(snap[-1])
        calcs[at] = (calcs[at][0], window)
        return (*snap[:-1], tuple(calcs))
    return garbage


class _State:
    """A value state that pickles on update, as PyFlink's ``PICKLED_BYTE_ARRAY`` converter does."""

    def __init__(self) -> None:
        self.raw: bytes | None = None

    def value(self) -> Any:
        return None if self.raw is None else pickle.loads(self.raw)

    def update(self, value: Any) -> None:
        self.raw = pickle.dumps(value)

    def clear(self) -> None:
        self.raw = None


class _MapState:
    """A map state that pickles each value put, as PyFlink's ``PICKLED_BYTE_ARRAY`` converter
    does."""

    def __init__(self) -> None:
        self.raw: dict[Any, bytes] = {}

    def items(self) -> list[tuple[Any, Any]]:
        return [(key, pickle.loads(raw)) for key, raw in self.raw.items()]

    def put(self, key: Any, value: Any) -> None:
        self.raw[key] = pickle.dumps(value)

    def remove(self, key: Any) -> None:
        del self.raw[key]

    def clear(self) -> None:
        self.raw.clear()


class _Runtime:
    def __init__(self) -> None:
        self.states: dict[str, _State] = {}
        self.maps: dict[str, _MapState] = {}

    def get_state(self, descriptor: Any) -> _State:
        return self.states.setdefault(descriptor.get_name(), _State())

    def get_map_state(self, descriptor: Any) -> _MapState:
        return self.maps.setdefault(descriptor.get_name(), _MapState())


def _operator(runtime: _Runtime) -> AnalyticsOperator:
    topics = {"AnalyticsBar": "b", "Signal": "s", "Alert": "a", "DeadLetter": "d"}
    operator = AnalyticsOperator(BUILTINS, AnalyticsSettings(), topics, {})
    operator.open(runtime)
    return operator


def test_the_operator_reads_its_own_writes_and_the_format_before_snapshots() -> None:
    runtime = _Runtime()
    operator = _operator(runtime)
    model = operator.model
    assert model is not None
    state = model.initial_state()
    run(model, state, stream(5, 120))
    operator._write(state, 1234)
    stored, stale_at = operator._read("AAA")
    assert stale_at == 1234 and stored is not None
    assert pickle.dumps(model.snapshot(stored)) == pickle.dumps(model.snapshot(state))

    runtime.states["model_state"].update((state, 99))  # as the job wrote it before snapshots
    legacy, stale_at = _operator(runtime)._read("AAA")
    assert stale_at == 99 and legacy is not None
    assert pickle.dumps(model.snapshot(legacy)) == pickle.dumps(model.snapshot(state))


@pytest.mark.parametrize(
    "stored",
    [
        ("snapshot-0", {}, None),
        (STATE_FORMAT, {"ind": (42, 1), "strategies": {}}, None),
        (STATE_FORMAT, [1, 2], None),
        "a string",
        (1, 2, 3, 4),
        "packed-7-bytes",
        "packed-nan",
    ],
    ids=[
        *("other-format", "bad-indicators", "not-a-dict", "string", "four-tuple"),
        *("packed-7-bytes", "packed-nan"),
    ],
)
def test_an_unreadable_stored_state_is_an_error_in_the_log_and_a_fresh_start(
    stored: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A stored value the operator cannot read, the job's own snapshot with a window's packed
    floats spoilt among them: an error in the log and a fresh symbol, never a crash."""
    if isinstance(stored, str) and stored.startswith("packed-"):
        model = SymbolModel(BUILTINS, AnalyticsSettings())
        state = model.initial_state()
        run(model, state, stream(5, 60))
        snap = model.snapshot(state)
        bad = b"\x01" * 7 if stored == "packed-7-bytes" else pack([math.nan])
        snap["ind"] = _garbled(snap["ind"], model.engine, bad)
        model.restore(model.snapshot(state))  # the unspoilt one restores
        stored = (STATE_FORMAT, snap, None)
    runtime = _Runtime()
    runtime.get_state(type("D", (), {"get_name": lambda self: "model_state"})()).update(stored)
    operator = _operator(runtime)
    with caplog.at_level(logging.ERROR, logger="flinktrade.pipeline.operator"):
        assert operator._read("AAA") == (None, None)
    assert "cannot read the model state of AAA" in caplog.text
