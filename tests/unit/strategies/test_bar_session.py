"""``bar.session``: the market session a bar starts in, for strategies that trade by the clock of
the exchange (times below converted from ET to UTC by hand)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from tests.unit.strategies.conftest import MakeBar

from flinktrade.events import Side
from flinktrade.sessions import Session
from flinktrade.strategies import BarView, Intent, State


def utc(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


@pytest.mark.parametrize(
    ("ts", "session"),
    [
        (utc(2024, 7, 3, 12, 0), Session.PRE),  # 08:00 EDT
        (utc(2024, 7, 3, 13, 30), Session.REGULAR),  # 09:30, the first bar
        (utc(2024, 7, 3, 16, 59), Session.REGULAR),  # 12:59, the last bar before the 13:00 close
        (utc(2024, 7, 3, 17, 0), Session.POST),  # 13:00 on an early-close day
        (utc(2024, 7, 4, 15, 0), Session.CLOSED),  # Independence Day
        (utc(2024, 1, 2, 14, 30), Session.REGULAR),  # 09:30 EST
        (utc(2024, 1, 2, 13, 30), Session.PRE),  # 08:30 EST
    ],
)
def test_a_bar_knows_its_session(make_bar: MakeBar, ts: int, session: Session) -> None:
    bar = make_bar(ts=ts)
    assert bar.session is session
    assert bar.session == session.value  # a plain string to strategies that compare strings


class RegularOnly:
    """A strategy that buys only in the regular session: what ``bar.session`` is for."""

    name = "regular_only"

    def indicators(self) -> set[str]:
        return set()

    def initial_state(self) -> State:
        return {}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        if bar.session != "regular":
            return [], state
        return [Intent(side=Side.BUY, reason="regular session")], state


def test_a_strategy_can_skip_bars_outside_the_regular_session(make_bar: MakeBar) -> None:
    strategy = RegularOnly()
    pre = make_bar(ts=utc(2024, 7, 3, 12, 0))
    regular = make_bar(ts=utc(2024, 7, 3, 14, 0))
    assert strategy.on_bar(pre, {})[0] == []
    assert [i.reason for i in strategy.on_bar(regular, {})[0]] == ["regular session"]
