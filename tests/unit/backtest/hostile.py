"""A strategy that breaks the model on one bar, used by the hostile-bar tests of both engines.

It trades every change of direction of the close, and on a bar whose close is ``poison`` it
returns an intent with a strength outside [0, 1]: ``SymbolModel`` builds the ``Signal`` after the
strategy returned, so the validation error escapes the model half-way through the bar (its state
already updated), which is what the operator's ``DueItems`` has to contain.
"""

from __future__ import annotations

from decimal import Decimal

from flinktrade.events import Side
from flinktrade.strategies import BarView, Intent, State


class Overreach:
    name = "overreach"

    def __init__(self, poison: str = "13.37") -> None:
        self.poison = Decimal(poison)

    def indicators(self) -> set[str]:
        return set()

    def initial_state(self) -> State:
        return {"last": None, "side": None}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        new = {"last": str(bar.close), "side": state["side"]}
        if bar.close == self.poison:
            return [Intent(Side.BUY, 2.0, "poison")], new
        if state["last"] is None or bar.close == Decimal(state["last"]):
            return [], new
        side = Side.BUY if bar.close > Decimal(state["last"]) else Side.SELL
        if side == state["side"]:
            return [], new
        new["side"] = side
        return [Intent(side, 1.0, "turn")], new
