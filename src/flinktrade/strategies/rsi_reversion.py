"""RSI mean reversion: buy when RSI climbs back up through ``low``, sell when it falls through ``high``."""

from __future__ import annotations

from flinktrade.events import Side
from flinktrade.orders import with_exits
from flinktrade.strategies.base import BarView, Intent, State

_BUY, _SELL = Side.BUY.value, Side.SELL.value


class RsiReversion:
    """RSI mean reversion: buy as RSI rises through ``low``, sell as it falls through ``high``.

    A buy is Wilder's RSI(period) crossing up through ``low`` (oversold, recovering); a sell is it
    crossing down through ``high`` (overbought, fading).

    A cross needs the RSI of the previous bar, so the first bar with an RSI never trades. A signal
    repeats the previous one's side never: after a buy, the next signal is a sell.
    """

    def __init__(
        self,
        period: int = 14,
        low: float = 30.0,
        high: float = 70.0,
        name: str = "rsi_reversion",
        take_profit_pct: float | None = None,
        stop_loss_pct: float | None = None,
        trail_pct: float | None = None,
    ) -> None:
        period, low, high = int(period), float(low), float(high)
        if period < 2:
            raise ValueError(f"rsi_reversion needs period >= 2, got {period}")
        if not 0 < low < high < 100:
            raise ValueError(f"rsi_reversion needs 0 < low < high < 100, got low={low} high={high}")
        self.period, self.low, self.high, self.name = period, low, high, name
        self._column = f"rsi_{period}"
        self.order = with_exits(take_profit_pct, stop_loss_pct, trail_pct)

    def indicators(self) -> set[str]:
        return {self._column}

    def initial_state(self) -> State:
        return {"rsi": None, "last": None}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        rsi = bar.indicators.get(self._column)
        if rsi is None:
            return [], state
        previous, last = state.get("rsi"), state.get("last")
        new_state = {"rsi": rsi, "last": last}
        if previous is None:
            return [], new_state
        if previous < self.low <= rsi and last != _BUY:
            new_state["last"] = _BUY
            reason = f"RSI{self.period} crossed above {self.low:g}"
            return [Intent(Side.BUY, 1.0, reason, self.order)], new_state
        if previous > self.high >= rsi and last != _SELL:
            new_state["last"] = _SELL
            reason = f"RSI{self.period} crossed below {self.high:g}"
            return [Intent(Side.SELL, 1.0, reason, self.order)], new_state
        return [], new_state
