"""The simulated broker matching on bars gives the backtest's entries and exits (issue 19).

The backtest (the in-process engine) runs ``examples.bracket_strategy:BracketBreakout`` (a day
limit entry with percentage exits), and ``sma_cross`` with ``stop_loss_pct``/``take_profit_pct``
(market entries), over 300 simulated one-minute bars of one symbol; its signals then go, in event-time lockstep with the same
bars, through a real executor with the simulated broker (``execution.sim.match_on = bars``) on the
session's Kafka broker: a bar, then the signals of that bar once the broker has matched it, then
the next bar only once the executor has decided every signal and placed every exit (conditions
waited on, never sleeps). Every entry and exit the executor records (symbol, side, qty, fill time,
price to the micro-dollar, exit reason) must equal the backtest's trades.

Where the two differ by design, the test pins it rather than hiding it:

- size: the executor sizes by its settings, the backtester by the sleeve's equity; an order's own
  ``qty`` wins in both, so the test gives every signal's order ``qty = 10``;
- position rules: the backtester skips a signal while a position or an entry is open; the executor
  has risk limits instead, so ``max_open_orders = 1`` (one symbol) denies those same signals;
- percentage exits: the executor places them once it hears of the entry's fill, so they first meet
  the next bar; the backtester's meet the rest of the fill bar. The data (seeds 5 and 23) has no
  trade whose exit fills on its entry's bar: asserted, so a change of data cannot hide it;
- an opposite signal: the backtester closes the position at the market (exit reason ``signal``)
  and cancels its exits; the executor cancels the exits first, then closes at the market
  (``cancelling``); not compared here: ``sma_cross``'s sells are all on a flat position, where
  both do nothing (asserted as well);
- risk settings let history through: signal age judged on neither clock that matters here
  (``max_signal_age_s`` huge, ``signal_age_from_event_time`` off), no market-hours rule, rate
  limits high, price deviation wide; reconciliation only at start (run between a fill at the
  broker and its update, it finds a difference and blocks the next order for a while), and no
  polling of open orders (a fill learned by polling is stamped with the wall clock, one from the
  broker's update with the bar's start).

Matching on trades instead (``match_on = trades``: each bar as its close) fills the entries at a
bar's close instead of within its range and the test fails (tried when it was written).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from exec_helpers import Running, wait_until

from flinktrade import bus, events
from flinktrade.backtest.engine import BacktestRequest
from flinktrade.backtest.inprocess import run_inprocess
from flinktrade.backtest.portfolio import ExecutionModel, Trade, simulate
from flinktrade.backtest.simulated import simulated_market
from flinktrade.config import KafkaSettings, Settings
from flinktrade.execution.brokers.simulated import SimulatedBroker
from flinktrade.execution.settings import (
    ExecutionSettings,
    ExecutionTopics,
    MarketHours,
    RiskSettings,
    SimBrokerSettings,
    SimMatchOn,
)
from flinktrade.execution.store import OrderStore, Phase
from flinktrade.pipeline.analytics import StrategySpec

REPO_ROOT = Path(__file__).resolve().parents[3]
QTY = Decimal(10)
MINUTES = 300
CASES = {  # (strategy, seed of the simulated market)
    "bracket_breakout": (
        StrategySpec(
            "examples.bracket_strategy:BracketBreakout",
            {"stop_loss_pct": 0.5, "take_profit_pct": 0.6},
        ),
        5,
    ),
    "sma_cross": (
        StrategySpec(
            "sma_cross", {"fast": 5, "slow": 20, "stop_loss_pct": 0.3, "take_profit_pct": 0.3}
        ),
        23,
    ),
}
MODEL = ExecutionModel(  # the simulated broker's default costs, in the backtester's terms
    cash=100_000.0, commission_per_share=0.005, commission_min=1.0, slippage_bps=5.0
)
PRICE = Decimal("0.000001")
Row = tuple[str, str, Decimal, int, Decimal, str]
"""(symbol, side, qty, fill time, price, exit reason or "entry")."""


@pytest.fixture(autouse=True)
def _repo_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(REPO_ROOT))  # examples/ is loaded by dotted path


def _sized(signal: events.Signal) -> events.Signal:
    assert signal.order is not None
    return signal.model_copy(update={"order": signal.order.model_copy(update={"qty": QTY})})


def _price(value: float) -> Decimal:
    return Decimal(repr(value)).quantize(PRICE)


def _backtest_rows(trades: list[Trade]) -> list[Row]:
    rows: list[Row] = []
    for t in trades:
        assert t.direction == "long"
        rows.append((t.symbol, "buy", Decimal(t.size), t.entry_ts, _price(t.entry_price), "entry"))
        if t.exit_ts is not None and t.exit_price is not None:
            size = Decimal(t.size)
            rows.append((t.symbol, "sell", size, t.exit_ts, _price(t.exit_price), t.exit_reason))
    return sorted(rows, key=lambda r: (r[3], r[1]))


def _executor_rows(store: OrderStore) -> list[Row]:
    rows: list[Row] = []
    for fill in store.fills():
        order = store.get(fill.client_order_id)
        assert order is not None, fill.client_order_id
        reason = order.leg or "entry"
        rows.append((fill.symbol, fill.side.value, fill.qty, fill.ts, fill.price, reason))
    return sorted(rows, key=lambda r: (r[3], r[1]))


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_simulated_broker_on_bars_gives_the_backtests_entries_and_exits(
    case: str,
    kafka_settings: KafkaSettings,
    new_topic: Callable[..., str],
    state_dir: Path,
    start_executor: Callable[[Settings, SimulatedBroker], Running],
) -> None:
    strategy, seed = CASES[case]
    bars, _news = simulated_market(1, MINUTES, seed)
    result = run_inprocess(BacktestRequest(strategies=(strategy,), model=MODEL), bars)
    signals = [_sized(s) for s in result.signals]
    backtest = simulate(bars, signals, MODEL)  # the backtester's simulation, sizes pinned
    expected = _backtest_rows(backtest.trades)
    reasons = {r[5] for r in expected}
    assert {"take_profit", "stop_loss"} <= reasons, "the data must close trades both ways"
    assert not [t for t in backtest.trades if t.exit_ts == t.entry_ts], "an exit on its entry bar"
    assert "signal" not in reasons, "a position closed by a signal (see the module docstring)"

    bars_topic = new_topic("analytics.bars", 1)
    topics = ExecutionTopics(
        signals=new_topic("trading.signals", 1),
        orders=new_topic("trading.orders", 1),
        fills=new_topic("trading.fills", 1),
        alerts=new_topic("alerts", 1),
        deadletter=new_topic("deadletter", 1),
        prices=[bars_topic],
    )
    risk = RiskSettings(  # history must pass: see the module docstring
        max_signal_age_s=1e12,
        signal_age_from_event_time=False,
        max_orders_per_minute=100_000,
        halt_after_rate_denials=100_000,
        max_price_deviation_pct=Decimal(1000),
        max_order_notional=Decimal(10**9),
        max_gross_exposure=Decimal(10**9),
        max_open_orders=1,
    )
    sim = SimBrokerSettings(price_topics=[bars_topic], match_on=SimMatchOn.BARS)
    settings = Settings(
        state_dir=state_dir,
        kafka=kafka_settings,
        execution=ExecutionSettings(
            topics=topics,
            group_id=f"parity-{bars_topic[-8:]}",
            start_from="earliest",
            market_hours=MarketHours.OFF,
            order_retention_days=0,
            risk=risk,
            sim=sim,
            reconcile_interval_s=3600.0,  # between a fill and its update it would block orders
            order_poll_interval_s=3600.0,  # a fill learned by polling has the wall clock's time
        ),
    )
    broker = SimulatedBroker(settings)
    running = start_executor(settings, broker)
    running.started()
    wait_until(broker.following.is_set, 30, "the simulated broker following the bars")
    store = OrderStore(settings.execution.store_path(state_dir))
    producer = bus.EventProducer(kafka_settings.bootstrap_servers)
    entries = {f"ft-{s.id}" for s in signals}
    by_bar: dict[int, list[events.Signal]] = {}
    for signal in signals:
        by_bar.setdefault(signal.bar_ts, []).append(signal)

    def settled() -> bool:
        """The executor has caught up with the broker: nothing being sent, every order it holds
        open is open at the broker, every filled entry has its exits placed."""
        for order in store.orders():
            if order.phase in (Phase.INTENT, Phase.SENDING, Phase.UNKNOWN):
                return False
            if order.exits == "pending" and order.filled_qty > 0:
                return False
            if order.phase == Phase.ACKED:
                at_broker = broker.get_order(order.client_order_id)
                if at_broker is None or at_broker.status.final:
                    return False
        return True

    def entry_working() -> bool:
        return any(o.client_order_id in entries for o in broker.open_orders())

    try:
        published = 0
        for bar in bars:
            producer.send(bar, bars_topic)
            published += 1
            signals_here = by_bar.get(bar.ts, [])
            if not signals_here and not entry_working():
                continue  # nothing can need the executor before the next bar: go on
            producer.flush()
            seen = published
            wait_until(lambda n=seen: broker.prices_seen >= n, 30, f"bar {seen} matched")
            wait_until(settled, 30, f"the executor settled after bar {seen}")
            for signal in signals_here:
                producer.send(signal, topics.signals)
                producer.flush()
                coid = f"ft-{signal.id}"
                wait_until(lambda c=coid: store.get(c) is not None, 30, f"{coid} decided")
                wait_until(settled, 30, f"{coid} placed")
        producer.flush()
        wait_until(lambda: broker.prices_seen >= len(bars), 30, "every bar matched")
        wait_until(settled, 30, "the executor settled at the end")
        got = _executor_rows(store)
        denials = sorted({f"{o.rule}: {o.reason}" for o in store.orders() if o.rule})
    finally:
        store.close()
    assert got == expected, denials
    stats = running.finish()
    assert stats.error is None
    assert stats.dead_letters == 0
