"""A user strategy whose entries carry their own exits: a bracket of stop loss and take profit.

Load it by dotted path, like ``examples/momentum_strategy.py``::

    [[strategies]]
    name = "examples.bracket_strategy:BracketBreakout"
    symbols = ["AAPL"]
    params = { lookback = 20, stop_loss_pct = 2.0, take_profit_pct = 4.0 }

    # from the repository root (the folder holding examples/ must be on the path)
    PYTHONPATH=. flinktrade backtest --bars-csv GOOG.csv \\
        --strategy examples.bracket_strategy:BracketBreakout \\
        --param stop_loss_pct=2 --param take_profit_pct=4

An intent's ``order`` (``flinktrade.events.OrderSpec``) says which order to place: here a limit
order at the breakout bar's close (on the broker's tick), good for the day, with two exits
measured from the price the entry fills at. Once the entry fills, the executor (or the simulated
broker, or the backtester: the last two share one matching model) places the take profit (a
limit order) and the stop loss (a stop order); the first to fill cancels the other. The strategy
never sells by itself: the exits close its trades, and ``trades.csv`` of a backtest says which
one did (``exit_reason``).

Which fields go together is checked by ``flinktrade.orders.order_problem`` (Alpaca's rules, so a
signal the executor would deny is refused already where it is made: here, in ``__init__``).
"""

from __future__ import annotations

from decimal import Decimal

from flinktrade.events import OrderSpec, OrderType, Side, TimeInForce
from flinktrade.orders import order_problem, percent, to_tick
from flinktrade.strategies import BarView, Intent, State


class BracketBreakout:
    """Buy a close above the highest close of the last ``lookback`` bars, with a bracket of exits.

    The entry is a day limit order at the breakout close; the exits are a stop loss
    ``stop_loss_pct`` below and a take profit ``take_profit_pct`` above the entry's fill price.
    It keeps the last ``lookback`` closes in its state and, after a buy, lets ``cooldown`` bars
    pass before the next one.
    """

    def __init__(
        self,
        lookback: int = 20,
        stop_loss_pct: float = 2.0,
        take_profit_pct: float = 4.0,
        cooldown: int = 10,
        name: str = "bracket_breakout",
    ) -> None:
        lookback, cooldown = int(lookback), int(cooldown)
        if lookback < 2:
            raise ValueError(f"bracket_breakout needs lookback >= 2, got {lookback}")
        if cooldown < 0:
            raise ValueError(f"bracket_breakout needs cooldown >= 0, got {cooldown}")
        self.lookback, self.cooldown, self.name = lookback, cooldown, name
        self._exits = {
            "stop_loss_pct": percent("stop_loss_pct", stop_loss_pct),
            "take_profit_pct": percent("take_profit_pct", take_profit_pct),
        }
        problem = order_problem(self._order(Decimal(1)))  # the fields' combination, checked once
        if problem is not None:
            raise ValueError(f"bracket_breakout: {problem}")

    def _order(self, limit: Decimal) -> OrderSpec:
        return OrderSpec(
            type=OrderType.LIMIT, limit_price=limit, time_in_force=TimeInForce.DAY, **self._exits
        )

    def indicators(self) -> set[str]:
        return set()

    def initial_state(self) -> State:
        return {"closes": [], "wait": 0}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        closes: list[str] = state["closes"]
        wait = int(state["wait"])
        high = max((Decimal(c) for c in closes), default=None)
        new_state = {
            "closes": [*closes, str(bar.close)][-self.lookback :],
            "wait": max(0, wait - 1),
        }
        if high is None or len(closes) < self.lookback or bar.close <= high or wait:
            return [], new_state
        new_state["wait"] = self.cooldown
        reason = f"close {bar.close} above the {self.lookback}-bar high {high}"
        return [Intent(Side.BUY, 1.0, reason, self._order(to_tick(bar.close, up=False)))], new_state
