"""Bollinger breakout: buy when the close breaks above the upper band, sell below the lower one."""

from __future__ import annotations

from flinktrade.events import Side
from flinktrade.orders import with_exits
from flinktrade.strategies.base import BarView, Intent, State


def band_suffix(k: float) -> str:
    """``K`` as indicator names write it: 2.0 -> ``2``, 2.5 -> ``2_5``."""
    text = repr(float(k))
    if "e" in text or "n" in text:  # 1e-05, inf, nan
        raise ValueError(f"band width k must be a plain decimal number, got {k!r}")
    return text.removesuffix(".0").replace(".", "_")


class BollingerBreakout:
    """Bollinger breakout: buy as the close crosses above the upper band, sell below the lower.

    The bands are SMA(period) +/- k population standard deviations of the close.

    The close's zone (above / inside / below the bands) is remembered from bar to bar; entering the
    upper zone from elsewhere is a buy, entering the lower zone a sell. The first bar with bands
    only sets the zone. A signal never repeats the previous one's side.
    """

    def __init__(
        self,
        period: int = 20,
        k: float = 2.0,
        name: str = "bollinger_breakout",
        take_profit_pct: float | None = None,
        stop_loss_pct: float | None = None,
        trail_pct: float | None = None,
    ) -> None:
        period, k = int(period), float(k)
        if period < 2:
            raise ValueError(f"bollinger_breakout needs period >= 2, got {period}")
        if not 0 < k <= 100:
            raise ValueError(f"bollinger_breakout needs 0 < k <= 100, got {k}")
        suffix = f"{period}_{band_suffix(k)}"
        self.period, self.k, self.name = period, k, name
        self._upper, self._lower = f"bb_upper_{suffix}", f"bb_lower_{suffix}"
        self.order = with_exits(take_profit_pct, stop_loss_pct, trail_pct)

    def indicators(self) -> set[str]:
        return {self._upper, self._lower}

    def initial_state(self) -> State:
        return {"zone": None, "last": None}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        upper, lower = bar.indicators.get(self._upper), bar.indicators.get(self._lower)
        if upper is None or lower is None:
            return [], state
        close = float(bar.close)
        zone = 1 if close > upper else -1 if close < lower else 0
        previous, last = state.get("zone"), state.get("last")
        if zone == previous and "last" in state:
            return [], state  # nothing changes: keep the state (it is never mutated)
        new_state = {"zone": zone, "last": last}
        if previous is None or zone in (previous, 0):
            return [], new_state
        side = Side.BUY if zone > 0 else Side.SELL
        if last == side.value:
            return [], new_state
        new_state["last"] = side.value
        band = "upper" if zone > 0 else "lower"
        where = "above" if zone > 0 else "below"
        reason = f"close crossed {where} the {band} Bollinger band ({self.period}, {self.k:g})"
        return [Intent(side, 1.0, reason, self.order)], new_state
