"""Poison pills for the API's feed: every hostile record on every topic it reads, interleaved with
valid ones, on the real broker. The feed stays up, every valid record (and the next one after all
of them) is visible in the API, and what it must refuse is counted as dropped, never shown."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
import pytest
from api_helpers import MINUTE, T0, ApiEnv, make_bars, make_fill, make_order, make_signal

from flinktrade import bus, events
from flinktrade.events import Alert, OrderSpec, OrderStatus, OrderType, Severity, Side
from flinktrade.testing.hostile import ORDER_SPEC_VARIANTS, hostile_records, with_order_variants

pytestmark = pytest.mark.integration

PLACEHOLDER = "id-00000000"
"""The id of each template; record k gets ``id-%08d`` (same length, so cut variants stay cut)."""
SYMBOL = "PSN"
"""The poison test's own symbol, so its bars do not mix with the seeded ones."""

MUST_DROP = {
    "empty",
    "not_json",
    "truncated",
    "json_array",
    "json_null",
    "json_string",
    "not_utf8",
    "nested_deep",
    "one_mb_garbage",
    "ts_far_future",
    "ts_huge",
    "ts_before_1970",
    "missing_ts",
    "ts_wrong_type",
}
"""What no kind may accept: not an object of the type, or a time no chart can place."""
MUST_DROP_BY_KIND = {"signals": {"order_wrong_type", *ORDER_SPEC_VARIANTS}}
"""What one kind must refuse besides: a signal whose ``order`` the wire model refuses (issue 19)."""


def _json(event: events.Event) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(events.encode(event))
    return data


def templates() -> dict[str, dict[str, Any]]:
    bar = make_bars(SYMBOL, 1, seed=7)[0]
    signal = make_signal(SYMBOL, bar, Side.BUY, "poison")
    spec = OrderSpec(
        type=OrderType.LIMIT, limit_price=bar.close, take_profit_pct=Decimal(4),
        stop_loss_pct=Decimal(2),
    )  # fmt: skip
    signal = signal.model_copy(update={"id": PLACEHOLDER, "order": spec})
    order = make_order(signal, OrderStatus.FILLED, 10).model_copy(
        update={
            "event_id": PLACEHOLDER, "id": PLACEHOLDER, "client_order_id": PLACEHOLDER,
            "type": "stop", "stop_price": bar.close, "time_in_force": "gtc",
            "order_class": "bracket", "parent_client_order_id": "ft-parent", "leg": "stop_loss",
        }
    )  # fmt: skip
    fill = make_fill(signal).model_copy(update={"id": PLACEHOLDER})
    alert = Alert(
        ts=T0,
        id=PLACEHOLDER,
        kind="price_jump",
        severity=Severity.WARNING,
        symbol=SYMBOL,
        message="x",
    )
    news = events.NewsItem(
        ts=T0, id=PLACEHOLDER, headline="PSN news", symbols=[SYMBOL], sentiment=0.5
    )
    return {
        "bars": _json(bar),
        "signals": _json(signal),
        "alerts": _json(alert),
        "orders": _json(order),
        "fills": _json(fill),
        "news": _json(news),
    }


def stream(kind: str, template: dict[str, Any]) -> list[tuple[str, bytes]]:
    """valid, hostile, valid, ..., valid; every record with its own id (bars: their own minute)."""
    valid = json.dumps(template).encode()
    records: list[tuple[str, bytes]] = []
    for name, variant in [("valid", valid)] + [
        item
        for pair in (
            (v, ("valid", valid)) for v in hostile_records(template) + with_order_variants(template)
        )
        for item in pair
    ]:
        k = len(records)
        if kind == "bars" and name == "valid":  # bars are told apart by their minute
            records.append((name, json.dumps({**template, "ts": T0 + (k + 1) * MINUTE}).encode()))
        else:
            records.append((name, variant.replace(PLACEHOLDER.encode(), f"id-{k:08d}".encode())))
    return records


def identity(kind: str, raw: bytes) -> str | None:
    """How the API names the record (its id, or for bars its minute); None if it has none."""
    if kind == "bars":
        match = re.search(rb'"ts": (\d+)', raw)
        return match.group(1).decode() if match else None
    match = re.search(rb"id-\d{8}", raw)
    return match.group(0).decode() if match else None


def visible(client: httpx.Client, env: ApiEnv, kind: str) -> set[str]:
    if kind == "bars":
        items = client.get(
            "/api/bars", params={"symbol": SYMBOL, "limit": 1000}, headers=env.auth
        ).json()
        return {str(item["ts"]) for item in items}
    items = client.get(f"/api/{kind}", params={"limit": 1000}, headers=env.auth).json()
    key = "client_order_id" if kind == "orders" else "id"
    return {str(item[key]) for item in items}


def dropped(text: str, kind: str) -> float:
    pattern = rf'flinktrade_api_dropped_total\{{reason="[a-z_]+",topic="{kind}"\}} ([0-9.e+]+)'
    return sum(float(value) for value in re.findall(pattern, text))


def test_hostile_records_on_every_topic_are_dropped_and_the_feed_carries_on(
    api_env: ApiEnv,
) -> None:
    topics = api_env.settings.api.topics.by_kind()
    streams = {kind: stream(kind, template) for kind, template in templates().items()}
    producer = bus.EventProducer(
        api_env.settings.kafka.bootstrap_servers, extra={"message.max.bytes": 4_000_000}
    )
    for kind, records in streams.items():
        for _name, raw in records:
            producer.send_raw(topics[kind], raw, SYMBOL.encode(), T0)
    producer.flush()

    with api_env.client() as client:
        for kind, records in streams.items():
            last = identity(kind, records[-1][1])
            wait_visible(lambda kind=kind, last=last: last in visible(client, api_env, kind))
        health = client.get("/health", headers=api_env.auth).json()
        shown = {kind: visible(client, api_env, kind) for kind in streams}
        metrics = client.get("/metrics", headers=api_env.auth).text

        # The next valid record after all of that is shown too.
        after = make_signal(SYMBOL, make_bars(SYMBOL, 1, seed=8)[0], Side.SELL, "after_poison")
        api_env.producer.send(after, topics["signals"])
        api_env.producer.flush()
        wait_visible(lambda: after.id in visible(client, api_env, "signals"))

    assert health["status"] == "ok" and health["feed"]["error"] is None
    for kind, records in streams.items():
        names = {name for name, _ in records}
        must_drop = MUST_DROP | MUST_DROP_BY_KIND.get(kind, set())
        assert names >= must_drop, f"{kind}: a must-drop name is misspelt"
        valid = {identity(kind, raw) for name, raw in records if name == "valid"}
        assert valid <= shown[kind], f"{kind}: valid records missing"
        leaked = {
            name
            for name, raw in records
            if name in must_drop
            and (kind != "bars" or name.startswith("ts_"))  # other bad bars share the T0 minute
            and identity(kind, raw) in shown[kind]
        }
        assert leaked == set(), f"{kind}: shown although they must be dropped"
        assert dropped(metrics, kind) >= len(must_drop), f"{kind}: drops not counted"


def wait_visible(predicate: Callable[[], bool]) -> None:
    bus.wait_for(predicate, timeout_s=60, what="the API to show the record")
