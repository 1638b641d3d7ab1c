"""Message formatting per event type. Expected JSON is written by hand, not produced by the code."""

from __future__ import annotations

import json
import re
from decimal import Decimal

from flinktrade import events
from flinktrade.events import Alert, Severity, Side, Signal
from flinktrade.notify.format import Formatter, Message
from flinktrade.notify.notices import Notice, parse_record
from flinktrade.notify.settings import EventType
from flinktrade.testing.fake_slack import check_payload

T0 = 1_714_573_800_000  # 2024-05-01 14:30:00 UTC
DASHBOARD = "https://dash.example.com/"


def alert(**changes: object) -> Alert:
    fields: dict[str, object] = {
        "id": "a1b2",
        "kind": "volume_spike",
        "severity": Severity.WARNING,
        "symbol": "AAPL",
        "message": "Volume 5.2x the 20-bar average",
        "value": 5.2,
        "threshold": 3.0,
        "ts": T0,
        "ingest_ts": T0,
    }
    fields.update(changes)
    return Alert.model_validate(fields)


def rendered(event_type: EventType, record: bytes, dashboard: str | None = None) -> Message:
    notice = parse_record(event_type, record)
    return Formatter(dashboard).notice(notice)


def assert_snapshot(message: Message, expected: str) -> None:
    assert message.payload() == json.loads(expected)
    assert check_payload(message.payload()) == []


def test_alert() -> None:
    message = rendered(EventType.ALERT, events.encode(alert()), DASHBOARD)
    assert_snapshot(
        message,
        r"""{
          "text": "[WARNING] Volume spike: AAPL — Volume 5.2x the 20-bar average — value 5.2, threshold 3 — 2024-05-01 14:30:00 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":warning: Volume spike: AAPL", "emoji": true}},
            {"type": "section",
             "text": {"type": "mrkdwn", "text": "Volume 5.2x the 20-bar average"},
             "fields": [
               {"type": "mrkdwn", "text": "*Symbol*\nAAPL"},
               {"type": "mrkdwn", "text": "*Severity*\nwarning"},
               {"type": "mrkdwn", "text": "*Value*\n5.2"},
               {"type": "mrkdwn", "text": "*Threshold*\n3"}
             ]},
            {"type": "context", "elements": [
              {"type": "mrkdwn", "text": "2024-05-01 14:30:00 UTC · alert `a1b2` · <https://dash.example.com/|Open dashboard>"}
            ]}
          ]
        }""",
    )


def test_executor_halt_is_an_alert_with_its_own_title_and_escaped_text() -> None:
    halt = alert(
        id="h1",
        kind="executor.halt",
        severity=Severity.CRITICAL,
        symbol=None,
        message="Daily loss limit reached: -2,150.00 < -2,000.00",
        value=None,
        threshold=None,
    )
    assert_snapshot(
        rendered(EventType.ALERT, events.encode(halt)),
        r"""{
          "text": "[CRITICAL] Trading halted — Daily loss limit reached: -2,150.00 &lt; -2,000.00 — 2024-05-01 14:30:00 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":octagonal_sign: Trading halted", "emoji": true}},
            {"type": "section",
             "text": {"type": "mrkdwn", "text": "Daily loss limit reached: -2,150.00 &lt; -2,000.00"},
             "fields": [{"type": "mrkdwn", "text": "*Severity*\ncritical"}]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "2024-05-01 14:30:00 UTC · alert `h1`"}]}
          ]
        }""",
    )


def test_signal_with_indicators_and_sentiment() -> None:
    signal = Signal(
        id="s1",
        strategy="sma_cross",
        symbol="MSFT",
        side=Side.SELL,
        price=Decimal("402.15"),
        bar_ts=T0 - 60_000,
        ts=T0,
        ingest_ts=T0,
        strength=0.75,
        reason="fast SMA(20) crossed below slow SMA(50)",
        indicators={"sma_20": 402.5, "sma_50": 403.125, "sentiment": -0.3},
    )
    assert_snapshot(
        rendered(EventType.SIGNAL, events.encode(signal)),
        r"""{
          "text": "SELL MSFT @ 402.15 — sma_cross: fast SMA(20) crossed below slow SMA(50) — price 402.15, strength 0.75, sma_20 402.5, sma_50 403.125, sentiment -0.30 — 2024-05-01 14:30:00 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":chart_with_downwards_trend: SELL MSFT @ 402.15", "emoji": true}},
            {"type": "section",
             "text": {"type": "mrkdwn", "text": "*sma_cross*: fast SMA(20) crossed below slow SMA(50)"},
             "fields": [
               {"type": "mrkdwn", "text": "*Symbol*\nMSFT"},
               {"type": "mrkdwn", "text": "*Side*\nsell"},
               {"type": "mrkdwn", "text": "*Price*\n402.15"},
               {"type": "mrkdwn", "text": "*Strength*\n0.75"},
               {"type": "mrkdwn", "text": "*Indicators*\nsma_20 402.5\nsma_50 403.125"},
               {"type": "mrkdwn", "text": "*Sentiment*\n-0.30"}
             ]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "2024-05-01 14:30:00 UTC · signal `s1`"}]}
          ]
        }""",
    )


def test_filled_order() -> None:
    record = (
        b'{"event_id": "e-1", "id": "o-42", "client_order_id": "sig-abc", "symbol": "NVDA", "side": "buy",'
        b' "qty": "10", "type": "limit", "limit_price": "901.5", "status": "filled",'
        b' "filled_qty": "10", "filled_avg_price": "901.25", "strategy": "sma_cross",'
        b' "ts": 1714573805000, "broker": "simulated"}'
    )
    assert_snapshot(
        rendered(EventType.ORDER, record),
        r"""{
          "text": "Order filled: BUY 10 NVDA — type limit @ 901.5, filled 10 @ 901.25 — 2024-05-01 14:30:05 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":white_check_mark: Order filled: BUY 10 NVDA", "emoji": true}},
            {"type": "section", "fields": [
              {"type": "mrkdwn", "text": "*Symbol*\nNVDA"},
              {"type": "mrkdwn", "text": "*Side*\nbuy"},
              {"type": "mrkdwn", "text": "*Quantity*\n10"},
              {"type": "mrkdwn", "text": "*Type*\nlimit @ 901.5"},
              {"type": "mrkdwn", "text": "*Status*\nfilled"},
              {"type": "mrkdwn", "text": "*Filled*\n10 @ 901.25"},
              {"type": "mrkdwn", "text": "*Strategy*\nsma_cross"}
            ]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "2024-05-01 14:30:05 UTC · order `o-42`"}]}
          ]
        }""",
    )


def test_rejected_order() -> None:
    record = (
        b'{"event_id": "e-2", "id": "o-43", "client_order_id": "sig-def", "symbol": "TSLA",'
        b' "side": "sell", "qty": 5, "type": "market", "status": "rejected",'
        b' "reason": "insufficient buying power", "ts": 1714573806000}'
    )
    assert_snapshot(
        rendered(EventType.ORDER, record),
        r"""{
          "text": "Order rejected: SELL 5 TSLA — insufficient buying power — type market — 2024-05-01 14:30:06 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":no_entry: Order rejected: SELL 5 TSLA", "emoji": true}},
            {"type": "section",
             "text": {"type": "mrkdwn", "text": "insufficient buying power"},
             "fields": [
               {"type": "mrkdwn", "text": "*Symbol*\nTSLA"},
               {"type": "mrkdwn", "text": "*Side*\nsell"},
               {"type": "mrkdwn", "text": "*Quantity*\n5"},
               {"type": "mrkdwn", "text": "*Type*\nmarket"},
               {"type": "mrkdwn", "text": "*Status*\nrejected"}
             ]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "2024-05-01 14:30:06 UTC · order `o-43`"}]}
          ]
        }""",
    )


def test_fill() -> None:
    record = (
        b'{"id": "x-9", "order_id": "o-42", "client_order_id": "sig-abc", "symbol": "NVDA",'
        b' "side": "buy",'
        b' "qty": 10, "price": 901.25, "position_qty": 25, "ts": 1714573805000}'
    )
    assert_snapshot(
        rendered(EventType.FILL, record),
        r"""{
          "text": "Fill: BUY 10 NVDA @ 901.25 — notional 9,012.50, position 25 — 2024-05-01 14:30:05 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":moneybag: Fill: BUY 10 NVDA @ 901.25", "emoji": true}},
            {"type": "section", "fields": [
              {"type": "mrkdwn", "text": "*Symbol*\nNVDA"},
              {"type": "mrkdwn", "text": "*Side*\nbuy"},
              {"type": "mrkdwn", "text": "*Quantity*\n10"},
              {"type": "mrkdwn", "text": "*Price*\n901.25"},
              {"type": "mrkdwn", "text": "*Notional*\n9,012.50"},
              {"type": "mrkdwn", "text": "*Position*\n25"}
            ]},
            {"type": "context", "elements": [
              {"type": "mrkdwn", "text": "2024-05-01 14:30:05 UTC · order `o-42` · fill `x-9`"}
            ]}
          ]
        }""",
    )


def notice(event_type: EventType, kind: str, symbol: str, ts: int, severity: Severity) -> Notice:
    return Notice(f"{kind}:{symbol}:{ts}", event_type, kind, severity, symbol, ts, alert())


def test_summary_counts_every_notice_by_kind_and_symbol() -> None:
    notices = [
        notice(EventType.ALERT, "volume_spike", s, T0 + i * 1000, Severity.WARNING)
        for i, s in enumerate(["AAPL", "MSFT", "AAPL", "NVDA", "TSLA", "MSFT", "AAPL"])
    ]
    notices += [notice(EventType.ALERT, "price_gap", "AMD", T0 + 50_000, Severity.CRITICAL)] * 2
    notices += [
        notice(EventType.SIGNAL, "buy", s, T0 + 59_000, Severity.INFO)
        for s in ["AAPL", "MSFT", "AAPL"]
    ]
    assert_snapshot(
        Formatter(DASHBOARD).summary(notices, more=True),
        r"""{
          "text": "12 more notifications: 2 price_gap alerts on 1 symbol; 7 volume_spike alerts on 4 symbols; 3 buy signals on 2 symbols — 2024-05-01 14:30:00–14:30:59 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":rotating_light: 12 more notifications", "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": ":rotating_light: *2 price_gap alerts* on 1 symbol: AMD\n• *7 volume_spike alerts* on 4 symbols: AAPL, MSFT, NVDA, TSLA\n• *3 buy signals* on 2 symbols: AAPL, MSFT"}},
            {"type": "context", "elements": [
              {"type": "mrkdwn", "text": "2024-05-01 14:30:00–14:30:59 UTC · <https://dash.example.com/|Open dashboard>"}
            ]}
          ]
        }""",
    )


def test_summary_of_one_kind_names_it_in_the_header() -> None:
    notices = [
        notice(EventType.ALERT, "volume_spike", f"S{i % 12}", T0, Severity.WARNING)
        for i in range(499)
    ]
    assert_snapshot(
        Formatter().summary(notices, more=True),
        r"""{
          "text": "499 more volume_spike alerts on 12 symbols — 2024-05-01 14:30:00 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":warning: 499 more volume_spike alerts", "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "• *499 volume_spike alerts* on 12 symbols: S0, S1, S2, S3, S4, S5, S6, S7 +4 more"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "2024-05-01 14:30:00 UTC"}]}
          ]
        }""",
    )


def test_summary_of_very_many_kinds_stays_within_slack_limits_and_still_counts_all() -> None:
    notices = [
        notice(EventType.ALERT, f"kind_{k:04d}_" + "x" * 40, f"SYMBOL{s:02d}", T0, Severity.INFO)
        for k in range(1500)
        for s in range(k % 3 + 1)
    ]
    message = Formatter().summary(notices, more=True)
    assert check_payload(message.payload()) == []
    assert len(message.blocks) <= 50
    sections = [b["text"]["text"] for b in message.blocks if b["type"] == "section"]
    counted = sum(int(n) for text in sections for n in re.findall(r"\*(\d+) kind_", text))
    rest = re.search(r"…and (\d+) more in (\d+) other groups", sections[-1])
    assert rest is not None
    assert counted + int(rest.group(1)) == len(notices)
    assert message.blocks[0]["text"]["text"] == f":bell: {len(notices)} more notifications"


def test_summary_that_does_not_follow_a_message_does_not_say_more() -> None:
    notices = [notice(EventType.FILL, "fill", "AAPL", T0, Severity.INFO)] * 2
    message = Formatter().summary(notices, more=False)
    assert message.text == "2 fills on 1 symbol — 2024-05-01 14:30:00 UTC"
    assert message.blocks[0]["text"]["text"] == ":bell: 2 fills"


def test_long_and_hostile_text_is_clipped_and_escaped() -> None:
    message = rendered(
        EventType.ALERT,
        events.encode(alert(message="<!channel> & " + "y" * 5000, symbol="A<B>")),
    )
    assert check_payload(message.payload()) == []
    section = message.blocks[1]
    assert section["text"]["text"].startswith("&lt;!channel&gt; &amp; yyy")
    assert len(section["text"]["text"]) == 3000
    assert section["fields"][0]["text"] == "*Symbol*\nA&lt;B&gt;"
    assert "<!channel>" not in message.text


def test_test_message() -> None:
    assert_snapshot(
        Formatter().test("critical", "alerts (critical)", T0),
        r"""{
          "text": "flinktrade test message: route critical is set up — alerts (critical) will be posted here — 2024-05-01 14:30:00 UTC",
          "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": ":white_check_mark: flinktrade test message", "emoji": true}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "Route *critical* is set up: alerts (critical) will be posted here."}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "2024-05-01 14:30:00 UTC"}]}
          ]
        }""",
    )


def test_repeats_share_an_id_and_order_updates_do_not() -> None:
    a = parse_record(EventType.ALERT, events.encode(alert()))
    assert parse_record(EventType.ALERT, events.encode(alert())).id == a.id
    new = parse_record(EventType.ORDER, order_record("e-new", "new"))
    filled = parse_record(EventType.ORDER, order_record("e-filled", "filled"))
    assert new.id != filled.id
    assert new.severity is Severity.INFO
    rejected = parse_record(EventType.ORDER, order_record("e-rejected", "rejected"))
    assert rejected.severity is Severity.WARNING


def order_record(event_id: str, status: str) -> bytes:
    return json.dumps(
        {
            "event_id": event_id,
            "id": "o1",
            "client_order_id": "c1",
            "symbol": "X",
            "side": "buy",
            "qty": "1",
            "status": status,
            "ts": T0,
        }
    ).encode()


def test_undecodable_records_say_why() -> None:
    import pytest

    with pytest.raises(events.DecodeError, match="symbol"):
        parse_record(
            EventType.FILL,
            b'{"id": "x", "order_id": "o", "client_order_id": "c", "side": "buy", "qty": 1,'
            b' "price": 2, "ts": 1714573800000}',
        )
    with pytest.raises(events.DecodeError):
        parse_record(EventType.ALERT, b"not json")
