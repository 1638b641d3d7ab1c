"""Poison pills: every hostile record on every topic the notifier reads, interleaved with valid
ones, on the real broker with the loopback fake of Slack. The notifier stays up, posts every record
it accepts, dead-letters every record it rejects (with the reason), and commits past all of them."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]
from notify_helpers import accounted

from flinktrade import bus, events
from flinktrade.config import KafkaSettings
from flinktrade.events import (
    Alert,
    Fill,
    OrderEvent,
    OrderSpec,
    OrderStatus,
    OrderType,
    Severity,
    Side,
    Signal,
)
from flinktrade.notify import service
from flinktrade.notify.settings import NotifySettings, NotifyTopics
from flinktrade.testing.fake_slack import FakeSlack
from flinktrade.testing.hostile import ORDER_SPEC_VARIANTS, hostile_records, with_order_variants

pytestmark = pytest.mark.integration

T0 = 1_714_573_800_000
PLACEHOLDER = "id-00000000"
"""Every id of a template; record k gets ``id-%08d`` (same length, so cut variants stay cut)."""

GENERIC_REJECTS = {
    "empty",
    "not_json",
    "truncated",
    "json_array",
    "json_null",
    "json_string",
    "not_utf8",
    "nested_deep",
    "one_mb_garbage",
    "symbol_not_utf8",
    "symbol_number",
}
BAD_TS = {"ts_far_future", "ts_huge", "ts_before_1970"}
NOT_FINITE = ("nan", "infinity", "minus_infinity")


def _template(event: events.Event) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(events.encode(event))
    return data


def alert_template() -> dict[str, Any]:
    return _template(
        Alert(
            id=PLACEHOLDER,
            kind="volume_spike",
            severity=Severity.WARNING,
            symbol="AAPL",
            message="volume 5x the average",
            value=5.0,
            threshold=3.0,
            ts=T0,
        )
    )


def signal_template() -> dict[str, Any]:
    return _template(
        Signal(
            id=PLACEHOLDER,
            strategy="sma_cross",
            symbol="AAPL",
            side=Side.BUY,
            price=Decimal("187.25"),
            bar_ts=T0 - 60_000,
            reason="sma_20 crossed above sma_50",
            indicators={"sma_20": 187.0, "sma_50": 186.5},
            order=OrderSpec(
                type=OrderType.LIMIT,
                limit_price=Decimal("187.25"),
                take_profit_pct=Decimal(4),
                stop_loss_pct=Decimal(2),
            ),
            ts=T0,
        )
    )


def order_template() -> dict[str, Any]:
    return _template(
        OrderEvent(
            event_id=PLACEHOLDER,
            id=PLACEHOLDER,
            client_order_id=PLACEHOLDER,
            strategy="sma_cross",
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal(10),
            type="stop_limit",
            limit_price=Decimal("187.30"),
            stop_price=Decimal("187.40"),
            time_in_force="gtc",
            order_class="bracket",
            parent_client_order_id="ft-parent-1",
            leg="stop_loss",
            status=OrderStatus.FILLED,
            filled_qty=Decimal(10),
            filled_avg_price=Decimal("187.25"),
            reason="filled",
            ts=T0,
        )
    )


def fill_template() -> dict[str, Any]:
    return _template(
        Fill(
            id=PLACEHOLDER,
            order_id="order-1",
            client_order_id="coid-1",
            strategy="sma_cross",
            symbol="AAPL",
            side=Side.BUY,
            qty=Decimal(10),
            price=Decimal("187.25"),
            position_qty=Decimal(10),
            ts=T0,
        )
    )


def _wrong_types(fields: set[str]) -> set[str]:
    return {f"{field}_wrong_type" for field in fields}


# What each topic must refuse, written down from the contracts (not from the code under test):
# required fields, fields whose wrong type cannot render, and values a notice cannot carry.
# Variants not listed may go either way; each must end posted or dead-lettered.
MUST_REJECT: dict[str, tuple[Callable[[], dict[str, Any]], set[str]]] = {
    "alerts": (
        alert_template,
        GENERIC_REJECTS
        | BAD_TS
        | {f"missing_{f}" for f in ("id", "kind", "message", "ts")}
        | _wrong_types({"id", "kind", "severity", "symbol", "message", "value", "ts"}),
    ),
    "signals": (
        signal_template,
        GENERIC_REJECTS
        | BAD_TS
        | {"symbol_null"}
        | {f"price_{n}" for n in NOT_FINITE}
        | {f"missing_{f}" for f in ("id", "strategy", "symbol", "side", "price", "ts")}
        | set(ORDER_SPEC_VARIANTS)
        | _wrong_types({"id", "strategy", "symbol", "side", "price", "indicators", "order", "ts"}),
    ),
    "orders": (
        order_template,
        GENERIC_REJECTS
        | BAD_TS
        | {"symbol_null", "symbol_empty"}
        | {
            f"{f}_{n}"
            for f in ("limit_price", "stop_price", "filled_avg_price")
            for n in NOT_FINITE
        }
        | {"qty_nan"}
        | {f"missing_{f}" for f in ("id", "symbol")}
        | _wrong_types(
            {"id", "symbol", "side", "qty", "limit_price", "stop_price", "status", "ts"}
        ),
    ),
    "fills": (
        fill_template,
        GENERIC_REJECTS
        | BAD_TS
        | {"symbol_null", "symbol_empty"}
        | {f"price_{n}" for n in (*NOT_FINITE, "zero", "minus_zero", "negative")}
        | {f"qty_{n}" for n in ("zero", "negative", "nan")}
        | {f"missing_{f}" for f in ("id", "symbol", "qty", "price")}
        | _wrong_types({"id", "symbol", "side", "qty", "price", "ts"}),
    ),
}


def stream(template: dict[str, Any]) -> list[tuple[str, bytes]]:
    """valid, hostile, valid, hostile, ..., valid: every record with its own ids (a template
    with an ``order`` also gets the nested ``ORDER_SPEC_VARIANTS``)."""
    records: list[tuple[str, bytes]] = []
    variants = hostile_records(template) + with_order_variants(template)
    valid = json.dumps(template).encode()
    for name, raw in [("valid", valid)] + [
        item for pair in ((v, ("valid", valid)) for v in variants) for item in pair
    ]:
        unique = f"id-{len(records):08d}".encode()
        records.append((name, raw.replace(PLACEHOLDER.encode(), unique)))
    return records


@pytest.fixture
def single_partition_topics(kafka_settings: KafkaSettings) -> Iterator[Callable[[str], str]]:
    """Topics of one partition (so offsets follow the order we write) that take records of up to
    4 MB, as a broker tuned for large records would; deleted after the test."""
    admin = bus.admin(kafka_settings.bootstrap_servers)
    created: list[str] = []

    def make(base: str, max_bytes: int | None = 4_000_000) -> str:
        name = f"{base}.{uuid.uuid4().hex[:8]}"
        config = {"max.message.bytes": str(max_bytes)} if max_bytes else {}
        for future in admin.create_topics([NewTopic(name, 1, 1, config=config)]).values():
            future.result()
        created.append(name)
        return name

    yield make
    bus.delete_topics(kafka_settings.bootstrap_servers, created)


def test_hostile_records_on_every_topic_are_dead_lettered_and_the_notifier_carries_on(
    kafka_settings: KafkaSettings,
    single_partition_topics: Callable[..., str],
    make_settings: Callable[..., NotifySettings],
    run_notifier: Callable[..., Any],
    committed_offsets: Callable[[str, str], int],
) -> None:
    servers = kafka_settings.bootstrap_servers
    notify_topics = NotifyTopics(
        alerts=single_partition_topics("alerts"),
        signals=single_partition_topics("trading.signals"),
        orders=single_partition_topics("trading.orders"),
        fills=single_partition_topics("trading.fills"),
    )
    # The dead-letter topic keeps the broker's default 1 MB limit: dead letters must fit it.
    deadletter = single_partition_topics("deadletter", max_bytes=None)
    by_kind = {
        "alerts": notify_topics.alerts,
        "signals": notify_topics.signals,
        "orders": notify_topics.orders,
        "fills": notify_topics.fills,
    }
    streams = {kind: stream(MUST_REJECT[kind][0]()) for kind in by_kind}
    producer = bus.EventProducer(servers, extra={"message.max.bytes": 4_000_000})
    for kind, records in streams.items():
        for _name, raw in records:
            producer.send_raw(by_kind[kind], raw, b"AAPL", T0)
    producer.flush()

    with FakeSlack() as fake:
        settings = make_settings(
            notify_topics, webhook_url=fake.webhook_url("#trading"), min_interval_s=0.2
        )
        running = run_notifier(settings, deadletter_topic=deadletter)
        for kind, records in streams.items():
            wait_committed(committed_offsets, settings.group_id, by_kind[kind], len(records))
        assert running.thread.is_alive(), "the notifier stopped"

        letters = events_by_offset(servers, deadletter)
        posted = sum(len(records) for records in streams.values()) - len(letters)
        fake.wait_for(lambda f: accounted(f.messages()) >= posted, timeout_s=30)

        # The next valid record after all of that is posted as itself.
        last = json.dumps(alert_template()).replace(PLACEHOLDER, "id-the-last-one").encode()
        producer.send_raw(notify_topics.alerts, last, b"AAPL", T0)
        producer.flush()
        fake.wait_for(lambda f: "id-the-last-one" in json.dumps(f.messages()[-1].body), 20)
        assert running.thread.is_alive()
        stats = running.finish()

    assert accounted(fake.messages()) == posted + 1
    assert all(r.accepted for r in fake.requests)
    assert stats.rejected == len(letters)
    for kind, records in streams.items():
        topic = by_kind[kind]
        rejected = {
            name for offset, (name, _raw) in enumerate(records) if (topic, offset) in letters
        }
        must = MUST_REJECT[kind][1]
        assert must <= {name for name, _ in records}, f"{kind}: a must-reject name is misspelt"
        assert must - rejected == set(), f"{kind}: accepted what must be refused"
        assert "valid" not in rejected, f"{kind}: a valid record was dead-lettered"
        for offset, (name, raw) in enumerate(records):
            letter = letters.get((topic, offset))
            if letter is None:
                continue
            assert letter.reason, f"{kind} {name}: a dead letter without a reason"
            assert letter.partition == 0
            assert len(letter.payload.encode()) <= 64 * 1024, f"{kind} {name}: payload not cut"
            if len(raw) > 64 * 1024:
                assert letter.payload_bytes == len(raw)
            elif not name.endswith("not_utf8"):
                assert letter.payload == raw.decode(), f"{kind} {name}: payload changed"


def wait_committed(
    committed_offsets: Callable[[str, str], int], group_id: str, topic: str, count: int
) -> None:
    bus.wait_for(
        lambda: committed_offsets(group_id, topic) == count,
        timeout_s=60,
        what=f"the notifier to commit past every record of {topic}",
    )


def events_by_offset(servers: str, topic: str) -> dict[tuple[str, int], events.DeadLetter]:
    letters: dict[tuple[str, int], events.DeadLetter] = {}
    for letter in bus.decode_all(servers, topic, events.DeadLetter):
        assert letter.offset is not None
        letters[(letter.source_topic, letter.offset)] = letter  # repeats are allowed
    return letters


def test_a_dead_letter_the_broker_never_takes_is_given_up_and_the_offsets_move_on(
    kafka_settings: KafkaSettings,
    notify_topics: NotifyTopics,
    make_settings: Callable[..., NotifySettings],
    run_notifier: Callable[..., Any],
    committed_offsets: Callable[[str, str], int],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(service, "DEADLETTER_TIMEOUT_MS", 1_000)
    missing = f"deadletter.missing.{uuid.uuid4().hex[:8]}"  # never created; no auto-creation
    producer = bus.EventProducer(kafka_settings.bootstrap_servers)
    producer.send_raw(notify_topics.alerts, b"not json", b"AAPL", T0)
    valid = json.dumps(alert_template()).replace(PLACEHOLDER, "id-after-the-bad-one")
    producer.send_raw(notify_topics.alerts, valid.encode(), b"AAPL", T0)
    producer.flush()
    with FakeSlack() as fake:
        settings = make_settings(notify_topics, webhook_url=fake.webhook_url("#trading"))
        running = run_notifier(settings, deadletter_topic=missing)
        fake.wait_for(
            lambda f: any("id-after-the-bad-one" in json.dumps(m.body) for m in f.messages())
        )
        wait_committed(committed_offsets, settings.group_id, notify_topics.alerts, 2)
        assert running.thread.is_alive()
        stats = running.finish()
    assert stats.rejected == 1
    given_up = [r for r in caplog.records if "giving up on 1 dead letters" in r.getMessage()]
    assert len(given_up) == 1 and given_up[0].levelno == logging.ERROR
    assert f"{notify_topics.alerts}[" in given_up[0].getMessage()
