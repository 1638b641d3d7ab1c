"""SMA crossover ("golden cross"): buy when the fast SMA crosses above the slow one, sell below."""

from __future__ import annotations

from flinktrade.events import Side
from flinktrade.orders import with_exits
from flinktrade.strategies.base import BarView, Intent, State


class SmaCross:
    """Golden cross: buy as SMA(fast) crosses above SMA(slow), sell as it crosses below.

    Signals on each sign change of ``SMA(fast) - SMA(slow)`` once both are defined.

    A bar where the two are exactly equal does not count as a change; the previous sign is kept.
    """

    def __init__(
        self,
        fast: int = 20,
        slow: int = 50,
        name: str = "sma_cross",
        take_profit_pct: float | None = None,
        stop_loss_pct: float | None = None,
        trail_pct: float | None = None,
    ) -> None:
        fast, slow = int(fast), int(slow)
        if not 1 <= fast < slow:
            raise ValueError(f"sma_cross needs 1 <= fast < slow, got fast={fast} slow={slow}")
        self.fast, self.slow, self.name = fast, slow, name
        self._fast, self._slow = f"sma_{fast}", f"sma_{slow}"
        self.order = with_exits(take_profit_pct, stop_loss_pct, trail_pct)

    def indicators(self) -> set[str]:
        return {self._fast, self._slow}

    def initial_state(self) -> State:
        return {"sign": 0}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        indicators = bar.indicators
        fast, slow = indicators.get(self._fast), indicators.get(self._slow)
        if fast is None or slow is None:
            return [], state
        sign = (fast > slow) - (fast < slow)
        previous = int(state.get("sign", 0))
        if sign in (0, previous):
            return [], state
        new_state = {"sign": sign}
        if previous == 0:  # first defined bar: remember the side, do not trade
            return [], new_state
        side = Side.BUY if sign > 0 else Side.SELL
        reason = f"SMA{self.fast} {'above' if sign > 0 else 'below'} SMA{self.slow}"
        return [Intent(side, 1.0, reason, self.order)], new_state
