"""The lookahead guard, on the pure per-symbol logic the job runs (``SymbolModel``).

A strategy gets one ``BarView`` per closed bar and its own state, nothing else: the view has no
link to other bars, and what the model returns up to a bar never depends on later bars.
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import pytest
from backtesting.test import GOOG

from flinktrade import events
from flinktrade.config import AnalyticsSettings
from flinktrade.pipeline.analytics import ClosedBar, StrategySpec, SymbolModel
from flinktrade.strategies import BarView

PEEKER = StrategySpec("tests.integration.backtest.peek:Peeker", {})
SMA = StrategySpec("sma_cross", {"fast": 10, "slow": 20})


def goog_bars(n: int) -> list[ClosedBar]:
    out = []
    for stamp, row in GOOG.head(n).iterrows():
        price = {k: Decimal(repr(float(row[k]))) for k in ("Open", "High", "Low", "Close")}
        out.append(
            ClosedBar("GOOG", int(stamp.value // 1_000_000), price["Open"], price["High"],
                      price["Low"], price["Close"], int(row.Volume), None, 0, 86_400_000)
        )  # fmt: skip
    return out


def signals(bars: list[ClosedBar], specs: tuple[StrategySpec, ...]) -> list[dict[str, object]]:
    """The signals as plain values (without ``ingest_ts``, the wall-clock time of creation)."""
    model = SymbolModel(specs, AnalyticsSettings(alerts=False))
    state = model.initial_state()
    out = []
    for bar in bars:
        out.extend(e for e in model.on_bar(state, bar) if isinstance(e, events.Signal))
    return [s.model_dump(exclude={"ingest_ts"}) for s in out]


def test_the_bar_view_carries_one_bar_and_cannot_be_changed() -> None:
    names = {f.name for f in dataclasses.fields(BarView)}
    assert names == {
        "symbol", "ts", "end_ts", "open", "high", "low", "close", "volume", "vwap",
        "indicators", "sentiment",
    }  # fmt: skip
    view = BarView("X", 0, 60_000, *(Decimal(1),) * 4, 1, None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        view.close = Decimal(2)  # type: ignore[misc]


def test_a_peeking_strategy_has_seen_nothing_after_each_signal_bar() -> None:
    bars = goog_bars(60)
    got = signals(bars, (PEEKER,))
    assert len(got) == len(bars)
    for i, (signal, bar) in enumerate(zip(got, bars, strict=True)):
        seen = json.loads(str(signal["reason"]))
        assert seen["n"] == i + 1 and seen["max_end"] == bar.end_ts == signal["ts"]
        assert seen["future"] == []


@pytest.mark.parametrize("cut", [100, 200, 300])
def test_signals_up_to_a_bar_do_not_depend_on_later_bars(cut: int) -> None:
    bars = goog_bars(400)
    full = signals(bars, (SMA,))
    # Change every bar after the cut: the signals up to the cut must not move.
    changed = [
        dataclasses.replace(b, close=b.close * 2, high=b.high * 2) if i >= cut else b
        for i, b in enumerate(bars)
    ]
    cut_ts = bars[cut - 1].end_ts
    before = [s for s in full if int(s["ts"]) <= cut_ts]  # type: ignore[call-overload]
    assert before, "pick a cut after the first signal"
    after_change = signals(changed, (SMA,))
    assert after_change != full  # the change matters to the later signals...
    assert [s for s in after_change if int(s["ts"]) <= cut_ts] == before  # type: ignore[call-overload]
    assert signals(bars[:cut], (SMA,)) == before
