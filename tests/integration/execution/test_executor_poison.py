"""Poison pills for the executor: the hostile table, the reproduced findings and well-formed but
unsafe signals, among valid ones, on the real broker with the loopback fake of Alpaca.

The executor stays up; every record it cannot use ends as one dead letter with a reason (never an
order); every well-formed but unsafe signal ends as a ``denied`` order naming the rule; the valid
signals around them, and the next one after them all, are ordered exactly once."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from exec_helpers import Env, coid, wait_until

from flinktrade import bus, events
from flinktrade.config import KafkaSettings
from flinktrade.events import DeadLetter, OrderStatus, Side, Signal
from flinktrade.execution.settings import ExecutionTopics, RiskSettings
from flinktrade.testing.fake_alpaca_trading import FakeAlpacaTrading
from flinktrade.testing.hostile import hostile_records

PLACEHOLDER = "id-00000000"
"""The template's id; record k gets ``id-%08d`` (same length, so cut variants stay cut)."""

NOT_FINITE_OR_OUT_OF_RANGE = (
    "nan", "infinity", "minus_infinity", "1e400", "minus_zero", "zero", "tiny", "negative",
    "too_many_decimals", "huge",
)  # fmt: skip
# What the executor must refuse, from the contract (a signal's id, strategy, symbol 1..16
# upper-case characters, a positive finite price of at most 6 decimals, times in 1970..2100),
# not from the code under test.
MUST_DEAD_LETTER = (
    {
        "empty", "not_json", "truncated", "json_array", "json_null", "json_string", "not_utf8",
        "nested_deep", "one_mb_garbage",
    }
    | {f"price_{n}" for n in NOT_FINITE_OR_OUT_OF_RANGE}
    | {f"symbol_{n}" for n in ("empty", "long", "very_long", "spaces", "not_utf8", "number", "null")}
    | {f"{t}_{n}" for t in ("ts", "bar_ts") for n in ("far_future", "before_1970", "huge")}
    | {"ts_float", "bar_ts_float"}  # 1.5e12 is 2017: a bar that starts after it closes
    | {f"missing_{f}" for f in ("id", "strategy", "symbol", "side", "price", "bar_ts", "ts")}
    | {
        f"{f}_wrong_type"
        for f in ("id", "strategy", "symbol", "side", "price", "bar_ts", "ts", "ingest_ts",
                  "strength", "reason", "indicators")
    }
)  # fmt: skip
MAY_TRADE = {"missing_ingest_ts", "missing_reason", "missing_strength", "missing_indicators",
             "one_mb"}  # fmt: skip


def template(now: int) -> dict[str, Any]:
    signal = Signal(
        id=PLACEHOLDER, strategy="sma_cross", symbol="AAPL", side=Side.BUY,
        price=Decimal("100"), bar_ts=now - 61_000, ts=now - 1_000, ingest_ts=now - 500,
        reason="sma_20 crossed above sma_50", indicators={"sma_20": 100.1, "sma_50": 99.9},
    )  # fmt: skip
    data: dict[str, Any] = json.loads(events.encode(signal))
    return data


def reproduced(now: int) -> list[tuple[str, dict[str, Any]]]:
    """The findings, as signals that are otherwise valid."""
    return [
        ("repro_symbol_22", {"symbol": "A" * 22}),
        ("repro_symbol_17", {"symbol": "B" * 17}),
        ("repro_symbol_empty", {"symbol": ""}),
        ("repro_price_negative", {"price": -100000}),
        ("repro_price_zero", {"price": 0}),
        ("repro_price_1e-400", {"price": "1E-400"}),
        # an order the wire model refuses (issue 19): unknown type, bad prices, not an object
        ("repro_order_type_unknown", {"order": {"type": "iceberg"}}),
        ("repro_order_negative_limit", {"order": {"type": "limit", "limit_price": -5}}),
        ("repro_order_percent_100", {"order": {"take_profit_pct": 100}}),
        ("repro_order_qty_nan", {"order": {"qty": "NaN"}}),
        ("repro_order_not_an_object", {"order": "market"}),
        ("repro_order_tif_unknown", {"order": {"time_in_force": "forever"}}),
        ("repro_order_misspelt_exit", {"order": {"takeprofit_pct": 4}}),
    ]


def unsafe(now: int) -> list[tuple[str, dict[str, Any], str]]:
    """Well-formed signals that must not trade: (name, changes, the rule that denies them)."""
    return [
        ("unsafe_price_far_from_market", {"price": 150}, "price_deviation"),
        ("unsafe_no_market_price", {"symbol": "ZZZZ"}, "no_market_price"),
        ("unsafe_replayed_history", {"ts": now - 3_600_000, "bar_ts": now - 3_660_000},
         "signal_age"),
        ("unsafe_from_the_future", {"ts": now + 60_000}, "signal_age"),
        # well-formed orders Alpaca would refuse (issue 19): denied before anything is sent
        ("unsafe_order_limit_without_price", {"order": {"type": "limit"}}, "invalid_order"),
        ("unsafe_order_bracket_ioc", {"order": {"take_profit_price": 110,
         "stop_loss_price": 90, "time_in_force": "ioc"}}, "invalid_order"),
        ("unsafe_order_extended_market", {"order": {"extended_hours": True}}, "invalid_order"),
        ("unsafe_order_sub_penny", {"order": {"type": "limit", "limit_price": 99.123}},
         "invalid_order"),
        ("unsafe_order_qty_and_notional", {"order": {"qty": 1, "notional": 100}},
         "invalid_order"),
        ("unsafe_order_trailing_with_stop", {"order": {"trail_pct": 1, "stop_loss_pct": 2}},
         "invalid_order"),
    ]  # fmt: skip


@pytest.fixture
def big_topic(kafka_settings: KafkaSettings) -> Iterator[Callable[[str], str]]:
    """One-partition topics (offsets follow the order we write) taking records up to 4 MB."""
    admin = bus.admin(kafka_settings.bootstrap_servers)
    created: list[str] = []

    def make(base: str) -> str:
        name = f"{base}.{uuid.uuid4().hex[:8]}"
        config = {"max.message.bytes": "4000000"}
        for future in admin.create_topics([NewTopic(name, 1, 1, config=config)]).values():
            future.result()
        created.append(name)
        return name

    yield make
    bus.delete_topics(kafka_settings.bootstrap_servers, created)


def test_hostile_signals_are_dead_lettered_or_denied_and_the_executor_carries_on(
    env: Env, fake: FakeAlpacaTrading, start_executor, big_topic: Callable[[str], str]
) -> None:
    signals_topic = big_topic("trading.signals")
    env.topics = ExecutionTopics(**{**env.topics.model_dump(), "signals": signals_topic})
    now = events.now_ms()
    base = template(now)
    valid = json.dumps(base).encode()
    named: list[tuple[str, bytes | None]] = list(hostile_records(base))
    named += [(n, json.dumps({**base, **c}).encode()) for n, c in reproduced(now)]
    named += [(n, json.dumps({**base, **c}).encode()) for n, c, _ in unsafe(now)]
    named.append(("tombstone", None))  # a record without a value (Kafka's null, not b"")
    stream: list[tuple[str, bytes | None]] = []
    for i, item in enumerate(named):  # a valid signal after every 8 hostile ones
        stream.append(item)
        if i % 8 == 7:
            stream.append(("valid", valid))
    records = [
        (name, None if raw is None else raw.replace(PLACEHOLDER.encode(), f"id-{k:08d}".encode()))
        for k, (name, raw) in enumerate(stream)
    ]
    names = [n for n, _ in records]
    assert set(names) >= MUST_DEAD_LETTER | MAY_TRADE  # the table still has them

    risk = RiskSettings(
        allow_outside_market_hours=True, max_signal_age_s=600, max_orders_per_minute=1000,
        halt_after_rate_denials=1000, max_open_orders=1000,
    )  # fmt: skip
    running = start_executor(env.settings(risk=risk))
    running.started()
    producer = bus.EventProducer(
        env.kafka.bootstrap_servers, extra={"message.max.bytes": 4_000_000}
    )
    env.send_price(producer, "AAPL", Decimal("100"))
    for _name, raw in records:
        producer.send_raw(signals_topic, raw, None, None)
    producer.flush()

    group = env.group_id
    wait_until(
        lambda: bus.committed_to_end(env.kafka.bootstrap_servers, group, signals_topic),
        120,
        "every record decided and committed",
    )
    assert running.executor.alive and running.thread.is_alive() and not running.errors

    def outbox_drained() -> bool:  # dead letters are published from the store after the commit
        store = env.store()
        try:
            return not store.outbox(limit=1)
        finally:
            store.close()

    wait_until(outbox_drained, 60, "every dead letter published from the store's outbox")
    letters = bus.decode_all(env.kafka.bootstrap_servers, env.topics.deadletter, DeadLetter)
    by_offset = {d.offset: d for d in letters}
    assert len(by_offset) == len(letters)  # one dead letter per record, never two
    for offset, (name, raw) in enumerate(records):
        must = name in MUST_DEAD_LETTER or name.startswith("repro_") or name == "tombstone"
        if must:
            assert offset in by_offset, f"{name} has no dead letter"
            letter = by_offset[offset]
            assert letter.source_topic == signals_topic and letter.reason, name
            original = (raw or b"").decode("utf-8", errors="replace")
            assert original.startswith(letter.payload), name  # the original, maybe cut
            assert len(letter.payload.encode()) <= events.MAX_DEAD_PAYLOAD_BYTES, name
            if len(raw or b"") < 1000:
                assert letter.payload == original, name
        elif name == "valid" or name in MAY_TRADE or name.startswith("unsafe_"):
            assert offset not in by_offset, f"{name} was dead-lettered: {by_offset[offset].reason}"
    assert by_offset.keys() <= set(range(len(records)))

    store = env.store()
    try:
        for name, _changes, rule in unsafe(now):
            k = names.index(name)
            order = store.get(f"ft-id-{k:08d}")
            assert order is not None and order.status == OrderStatus.DENIED, name
            assert order.rule == rule and order.reason, (name, order)
        traded = {f"ft-id-{k:08d}" for k, n in enumerate(names) if n == "valid" or n in MAY_TRADE}
        assert set(fake.created) == traded  # nothing else reached the broker
        assert all(n == 1 for n in fake.created.values())
        assert all(store.get(c) is not None for c in traded)
    finally:
        store.close()

    [final] = [
        Signal(id=f"final-{uuid.uuid4().hex[:8]}", strategy="sma_cross", symbol="AAPL",
               side=Side.BUY, price=Decimal("100"), bar_ts=now - 60_000,
               ts=events.now_ms() - 500)
    ]  # fmt: skip
    producer.send(final, signals_topic)
    producer.flush()
    wait_until(lambda: fake.orders_created(coid(final)) == 1, 60, "the next valid signal ordered")
    stats = running.finish()
    assert fake.orders_created(coid(final)) == 1
    assert stats.error is None and not running.executor.alive
    assert stats.dead_letters == len(by_offset)
