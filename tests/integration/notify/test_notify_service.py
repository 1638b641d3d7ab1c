"""The notifier end to end: real Kafka topics in, the loopback fake of Slack out."""

from __future__ import annotations

import itertools
import json
import logging
import re
from collections.abc import Callable
from decimal import Decimal

import pytest
from notify_helpers import accounted

from flinktrade import bus, events
from flinktrade.config import KafkaSettings
from flinktrade.events import Alert, Severity, Side, Signal
from flinktrade.notify.settings import NotifySettings, NotifyTopics, RouteSettings
from flinktrade.testing.fake_slack import FakeSlack

pytestmark = pytest.mark.integration

SYMBOLS = ["AAPL", "MSFT", "NVDA", "TSLA", "AMD"]
T0 = 1_714_573_800_000


def alert(i: int, kind: str = "volume_spike", severity: Severity = Severity.WARNING) -> Alert:
    symbol = SYMBOLS[i % len(SYMBOLS)]
    return Alert(
        id=Alert.make_id(kind, symbol, T0 + i),
        kind=kind,
        severity=severity,
        symbol=symbol,
        message=f"{kind} #{i}",
        value=float(i),
        threshold=3.0,
        ts=T0 + i,
    )


def produce(settings: KafkaSettings, records: list[tuple[str, bytes, str]]) -> None:
    producer = bus.EventProducer(settings.bootstrap_servers)
    for topic, value, key in records:
        producer.send_raw(topic, value, key.encode(), T0)
    producer.flush()


def test_burst_of_500_alerts_is_paced_summarised_and_committed(
    kafka_settings: KafkaSettings,
    notify_topics: NotifyTopics,
    make_settings: Callable[..., NotifySettings],
    run_notifier: Callable[..., object],
    committed_offsets: Callable[[str, str], int],
) -> None:
    with FakeSlack(min_interval_s=1.0) as fake:  # answers 429 to anything faster per channel
        settings = make_settings(notify_topics, webhook_url=fake.webhook_url("#alerts"))
        run_notifier(settings)
        producer = bus.EventProducer(kafka_settings.bootstrap_servers)
        for i in range(500):
            producer.send(alert(i, "volume_spike" if i % 5 else "price_gap"), notify_topics.alerts)
        producer.flush()
        fake.wait_for(lambda f: accounted(f.messages()) >= 500, timeout_s=20)
        bus.wait_for(
            lambda: committed_offsets(settings.group_id, notify_topics.alerts) == 500,
            timeout_s=10,
            what="all 500 offsets committed",
        )
        messages = fake.messages()
    assert all(r.accepted for r in fake.requests), "the fake had to rate-limit the notifier"
    assert accounted(messages) == 500
    assert all(b.at - a.at >= 1.0 for a, b in itertools.pairwise(messages))
    summaries = [m for m in messages if re.match(r"\d+ ", m.text)]
    assert summaries, "a burst of 500 must be summarised"
    assert all(re.search(r"alerts? on \d symbols?", m.text) for m in summaries)


def test_routes_repeats_and_commits_only_after_slack_accepted(
    kafka_settings: KafkaSettings,
    notify_topics: NotifyTopics,
    topic: Callable[[str], str],
    fake_slack: FakeSlack,
    make_settings: Callable[..., NotifySettings],
    run_notifier: Callable[..., object],
    committed_offsets: Callable[[str, str], int],
) -> None:
    deadletter = topic("deadletter")
    settings = make_settings(
        notify_topics,
        bot_token=fake_slack.token,
        api_url=fake_slack.api_url,
        min_interval_s=0.2,
        retry_initial_s=0.1,
        retry_max_s=0.2,
        routes=[
            RouteSettings(
                name="critical", events=["alert"], min_severity="critical", channel="#critical"
            ),  # type: ignore[list-item,arg-type]
            RouteSettings(name="fills", events=["fill"], channel="#fills"),  # type: ignore[list-item]
            RouteSettings(name="trading", events=["alert", "signal", "order"], channel="#all"),  # type: ignore[list-item]
        ],
    )
    fake_slack.server_error(503, times=10_000, channel="#fills")  # Slack is down for #fills
    halt = alert(1, "executor.halt", Severity.CRITICAL)
    signal = Signal(
        id="sig-1",
        strategy="sma_cross",
        symbol="AAPL",
        side=Side.BUY,
        price=Decimal("187.25"),
        bar_ts=T0 - 60_000,
        ts=T0,
    )
    fill = json.dumps(
        {
            "id": "x-1",
            "order_id": "o-1",
            "client_order_id": "c-1",
            "symbol": "AAPL",
            "side": "buy",
            "qty": 10,
            "price": 187.3,
            "ts": T0,
        }
    ).encode()
    order = json.dumps(
        {
            "event_id": "e-1",
            "id": "o-1",
            "client_order_id": "c-1",
            "symbol": "AAPL",
            "side": "buy",
            "qty": 10,
            "status": "filled",
            "ts": T0,
        }
    ).encode()
    produce(
        kafka_settings,
        [
            (notify_topics.alerts, events.encode(halt), "MSFT"),
            (notify_topics.alerts, events.encode(halt), "MSFT"),  # a repeat (e.g. a job replay)
            (notify_topics.alerts, events.encode(alert(2)), "NVDA"),
            (notify_topics.alerts, b'{"kind": "broken"}', "NVDA"),  # undecodable
            (notify_topics.signals, events.encode(signal), "AAPL"),
            (notify_topics.orders, order, "AAPL"),
            (notify_topics.fills, fill, "AAPL"),
            (notify_topics.fills, fill, "AAPL"),  # a repeat
        ],
    )
    first = run_notifier(settings, deadletter_topic=deadletter)

    fake_slack.wait_for(lambda f: accounted(f.messages("#all")) == 4, timeout_s=15)
    fake_slack.wait_for(lambda f: sum(r.channel == "fills" for r in f.requests) >= 3, timeout_s=10)
    bus.wait_for(
        lambda: committed_offsets(settings.group_id, notify_topics.alerts) == 4,
        timeout_s=10,
        what="alerts committed",
    )
    assert committed_offsets(settings.group_id, notify_topics.fills) == 0  # not accepted yet

    fake_slack.clear_faults()  # Slack is back
    fake_slack.wait_for(lambda f: len(f.messages("#fills")) == 1, timeout_s=10)
    bus.wait_for(
        lambda: committed_offsets(settings.group_id, notify_topics.fills) == 2,
        timeout_s=10,
        what="fills committed",
    )
    stats = first.finish()  # type: ignore[attr-defined]
    assert stats.duplicates == 2
    assert stats.rejected == 1
    assert [m.text.split(" — ")[0] for m in fake_slack.messages("#critical")] == [
        "[CRITICAL] Trading halted: MSFT"
    ]
    assert fake_slack.messages("#fills")[0].text.startswith("Fill: BUY 10 AAPL @ 187.3")
    assert (
        accounted(fake_slack.messages("#all")) == 4
    )  # halt, alert, signal, order (fill is #fills)
    [letter] = bus.decode_all(kafka_settings.bootstrap_servers, deadletter, events.DeadLetter)
    assert letter.source_topic == notify_topics.alerts
    assert "required" in letter.reason

    # restarted with the same group: nothing is posted again, new records are
    before = len(fake_slack.messages())
    second = run_notifier(settings, deadletter_topic=deadletter)
    produce(kafka_settings, [(notify_topics.alerts, events.encode(alert(3)), "TSLA")])
    fake_slack.wait_for(lambda f: len(f.messages()) > before, timeout_s=15)
    second.finish()  # type: ignore[attr-defined]
    new = fake_slack.messages()[before:]
    assert [m.text.split(" — ")[1] for m in new] == ["volume_spike #3"]


def test_broken_destination_is_reported_once_and_offsets_still_move(
    kafka_settings: KafkaSettings,
    notify_topics: NotifyTopics,
    fake_slack: FakeSlack,
    make_settings: Callable[..., NotifySettings],
    run_notifier: Callable[..., object],
    committed_offsets: Callable[[str, str], int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    fake_slack.archive("#old")
    settings = make_settings(
        notify_topics,
        bot_token=fake_slack.token,
        api_url=fake_slack.api_url,
        min_interval_s=0.2,
        routes=[
            RouteSettings(name="old", channel="#old"),
            RouteSettings(name="new", channel="#new"),
        ],
    )
    running = run_notifier(settings)
    produce(
        kafka_settings,
        [(notify_topics.alerts, events.encode(alert(i)), SYMBOLS[i % 5]) for i in range(20)],
    )
    fake_slack.wait_for(lambda f: accounted(f.messages("#new")) == 20, timeout_s=15)
    bus.wait_for(
        lambda: committed_offsets(settings.group_id, notify_topics.alerts) == 20,
        timeout_s=10,
        what="offsets committed despite the broken route",
    )
    running.finish()  # type: ignore[attr-defined]
    assert sum(r.channel == "old" for r in fake_slack.requests) == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "#old" in errors[0]
    assert "is_archived" in errors[0]
    assert fake_slack.token not in caplog.text
