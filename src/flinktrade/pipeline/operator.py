"""The strategy operator: runs pure-Python strategies on each symbol's closed bars in Flink.

It is keyed by symbol; each strategy's state lives in Flink keyed state (one JSON document per
symbol), so it is checkpointed and restored with the job. Python sees bars only, never trades.

A strategy that raises is disabled for that symbol (recorded in its state, logged); the job and the
other strategies keep running.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from pyflink.common import Row
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from flinktrade import events
from flinktrade.strategies import BarView, Strategy, build

log = logging.getLogger(__name__)

SIGNAL_ROW_TYPE = Types.ROW_NAMED(
    ["symbol", "payload", "ts"], [Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE()), Types.LONG()]
)


@dataclass(frozen=True)
class StrategySpec:
    """A picklable description of one configured strategy instance."""

    name: str
    params: Mapping[str, Any]
    symbols: frozenset[str] = frozenset()  # empty: all symbols

    def applies_to(self, symbol: str) -> bool:
        return not self.symbols or symbol in self.symbols


def build_all(specs: Iterable[StrategySpec]) -> list[tuple[StrategySpec, Strategy]]:
    return [(spec, build(spec.name, spec.params)) for spec in specs]


def bar_view(row: Row) -> BarView:
    ts = int(row["ts"])
    return BarView(
        symbol=row["symbol"],
        ts=ts,
        end_ts=ts + int(row["interval_ms"]),
        open=Decimal(row["open"]),
        high=Decimal(row["high"]),
        low=Decimal(row["low"]),
        close=Decimal(row["close"]),
        volume=int(row["volume"]),
        vwap=row["vwap"],
        indicators=dict(row["indicators"] or {}),
    )


def run_strategies(
    strategies: Sequence[tuple[StrategySpec, Strategy]], bar: BarView, states: dict[str, Any]
) -> list[events.Signal]:
    """Apply every strategy that covers ``bar.symbol``; updates ``states`` in place."""
    out: list[events.Signal] = []
    for spec, strategy in strategies:
        if not spec.applies_to(bar.symbol):
            continue
        key = strategy.name
        state = states.get(key)
        if state is None:
            state = strategy.initial_state()
        if state.get("disabled"):
            continue
        try:
            intents, new_state = strategy.on_bar(bar, state)
        except Exception as exc:  # a user strategy may raise anything: contain it
            log.exception(
                "strategy %s failed on %s at %s; disabled for it", key, bar.symbol, bar.ts
            )
            states[key] = {"disabled": f"{type(exc).__name__}: {exc}"}
            continue
        states[key] = new_state
        for intent in intents:
            out.append(
                events.Signal(
                    id=events.Signal.make_id(key, bar.symbol, bar.ts),
                    strategy=key,
                    symbol=bar.symbol,
                    side=intent.side,
                    price=bar.close,
                    bar_ts=bar.ts,
                    ts=bar.end_ts,
                    strength=intent.strength,
                    reason=intent.reason,
                    indicators={k: bar.indicators.get(k) for k in sorted(strategy.indicators())},
                )
            )
    return out


class StrategyOperator(KeyedProcessFunction):  # type: ignore[misc]
    """Flink keyed operator around ``run_strategies``."""

    def __init__(self, specs: Sequence[StrategySpec]) -> None:
        self.specs = list(specs)
        self.strategies: list[tuple[StrategySpec, Strategy]] = []
        self.state: Any = None

    def open(self, runtime_context: RuntimeContext) -> None:
        self.strategies = build_all(self.specs)
        self.state = runtime_context.get_state(
            ValueStateDescriptor("strategy_state", Types.STRING())
        )

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        raw = self.state.value()
        states: dict[str, Any] = json.loads(raw) if raw else {}
        signals = run_strategies(self.strategies, bar_view(value), states)
        self.state.update(json.dumps(states, separators=(",", ":")))
        for signal in signals:
            yield Row(signal.symbol, events.encode(signal), signal.ts)
