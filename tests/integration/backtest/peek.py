"""A strategy that tries to look ahead, used by the lookahead-guard tests.

It cannot reach a later bar through the Strategy API, so all it can do is report what it was
given: every bar it saw, in order, and the attributes of the view. It signals on every bar with
that report as the reason, so a test can check, per signal, that nothing after the signal's bar
had been seen.
"""

from __future__ import annotations

import dataclasses
import json

from flinktrade.events import Side
from flinktrade.strategies import BarView, Intent, State


class Peeker:
    name = "peeker"

    def indicators(self) -> set[str]:
        return {"sma_20"}

    def initial_state(self) -> State:
        return {"n": 0, "max_end": 0}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        future = [
            name
            for name in ("next", "next_bar", "future", "data", "bars", "history")
            if hasattr(bar, name)
        ]
        new = {"n": state["n"] + 1, "max_end": max(state["max_end"], bar.end_ts)}
        report = {
            "n": new["n"],
            "max_end": new["max_end"],
            "end_ts": bar.end_ts,
            "fields": sorted(f.name for f in dataclasses.fields(bar)),
            "future": future,
        }
        return [Intent(Side.BUY, 1.0, json.dumps(report, sort_keys=True))], new
