"""A complete user strategy: rate-of-change momentum with a trend filter.

Run it in the job without installing anything, by dotted path (the repository root, or wherever
this file lives, must be on ``PYTHONPATH``)::

    [[strategies]]
    name = "examples.momentum_strategy:Momentum"
    symbols = ["AAPL", "MSFT"]
    params = { lookback = 10, threshold_pct = 1.0, trend = 50, name = "momentum_10" }

or ship it in a package and register it under the entry point group ``flinktrade.strategies``::

    [project.entry-points."flinktrade.strategies"]
    momentum = "mypkg.momentum_strategy:Momentum"

A strategy is a plain class; it needs no base class. The contract (``flinktrade.strategies.Strategy``):

- ``name``: a unique name per configured instance (it keys the state and each signal's id);
  accept a ``name`` parameter so two instances with different parameters can coexist.
- ``indicators()``: the indicator columns it reads, e.g. ``{"sma_50"}`` (grammar in
  ``flinktrade.indicators``); the job computes them and passes them in ``bar.indicators``.
- ``initial_state()``: a JSON-compatible dict (the job stores it as JSON in Flink state).
- ``on_bar(bar, state)``: returns ``(intents, new_state)``. Pure: use only the bar, its
  indicators and sentiment, and ``state``; no clock, no I/O, no globals; do not mutate ``state``.
  At most one intent per bar (a signal's id is strategy + symbol + bar time).

An exception in ``on_bar`` disables the strategy for that symbol and raises an alert; parameters
are validated in ``__init__``, where a ``ValueError`` becomes a configuration error at start-up.
"""

from __future__ import annotations

from flinktrade.events import Side
from flinktrade.strategies import BarView, Intent, State


class Momentum:
    """Rate-of-change momentum: buy on a strong rise above the trend, sell when the rise fades.

    Buys when the close is at least ``threshold_pct`` percent above the close ``lookback`` bars
    earlier and above SMA(trend); sells when that rate of change turns negative. It keeps the last
    ``lookback + 1`` closes in its own state and never signals the same side twice in a row.
    """

    def __init__(
        self,
        lookback: int = 10,
        threshold_pct: float = 1.0,
        trend: int = 50,
        name: str = "momentum",
    ) -> None:
        lookback, threshold_pct, trend = int(lookback), float(threshold_pct), int(trend)
        if lookback < 1 or trend < 2 or threshold_pct <= 0:
            raise ValueError("momentum needs lookback >= 1, trend >= 2 and threshold_pct > 0")
        self.lookback, self.threshold_pct, self.trend, self.name = (
            lookback,
            threshold_pct,
            trend,
            name,
        )

    def indicators(self) -> set[str]:
        return {f"sma_{self.trend}"}

    def initial_state(self) -> State:
        return {"closes": [], "last": None}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        close = float(bar.close)
        closes = [*state["closes"], close][
            -(self.lookback + 1) :
        ]  # a new list: state is not mutated
        new_state: State = {"closes": closes, "last": state["last"]}
        trend = bar.indicators.get(f"sma_{self.trend}")
        if len(closes) <= self.lookback or trend is None:
            return [], new_state
        change_pct = (close / closes[0] - 1) * 100
        if change_pct >= self.threshold_pct and close > trend and state["last"] != "buy":
            new_state["last"] = "buy"
            strength = min(1.0, change_pct / (3 * self.threshold_pct))
            reason = f"up {change_pct:.1f}% in {self.lookback} bars, above SMA{self.trend}"
            return [Intent(Side.BUY, strength, reason)], new_state
        if change_pct < 0 and state["last"] == "buy":
            new_state["last"] = "sell"
            reason = f"momentum faded: {change_pct:+.1f}% in {self.lookback} bars"
            return [Intent(Side.SELL, 1.0, reason)], new_state
        return [], new_state
