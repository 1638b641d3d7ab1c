"""The API against the real broker: routes, auth, limits, the kill switch, the live stream."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal

import pytest
import websockets
from api_helpers import BARS, ApiEnv, make_fill, make_signal
from pydantic import SecretStr

from flinktrade import bus
from flinktrade.api.server import resolve_token
from flinktrade.api.state import KINDS
from flinktrade.config import Settings
from flinktrade.errors import ConfigError
from flinktrade.events import Side

PROTECTED = [
    "/api/symbols",
    "/api/bars?symbol=AAA",
    "/api/signals",
    "/api/alerts",
    "/api/orders",
    "/api/fills",
    "/api/positions",
    "/api/strategies",
    "/api/news?symbol=AAA",
    "/metrics",
]


def test_health_needs_no_token_and_says_only_up_or_degraded_without_it(api_env: ApiEnv) -> None:
    with api_env.client() as client:
        anonymous = client.get("/health")
        wrong = client.get("/health", headers={"Authorization": "Bearer not-the-token"})
        response = client.get("/health", headers=api_env.auth)
    assert anonymous.status_code == wrong.status_code == 200
    assert anonymous.json() == wrong.json() == {"status": "ok"}
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["broker"]["reachable"] is True
    assert health["executor"] == {"state": "running", "reason": None}
    assert health["feed"]["caught_up"] is True
    assert api_env.token not in response.text


def test_health_reports_lag_and_metrics_count_events(api_env: ApiEnv) -> None:
    with api_env.client() as client:
        bus.wait_for(
            lambda: client.get("/health", headers=api_env.auth).json()["lags"]
            == dict.fromkeys(KINDS, 0),
            timeout_s=10,
            what="the API's lag to be measured as 0 on every topic",
        )


@pytest.mark.parametrize("path", PROTECTED)
def test_routes_need_the_token(api_env: ApiEnv, path: str) -> None:
    with api_env.client() as client:
        missing = client.get(path)
        wrong = client.get(path, headers={"Authorization": "Bearer not-the-token"})
        right = client.get(path, headers=api_env.auth)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert wrong.status_code == 401
    assert right.status_code == 200, right.text


def test_kill_switch_needs_the_token(api_env: ApiEnv) -> None:
    with api_env.client() as client:
        assert client.post("/api/halt").status_code == 401
        assert client.post("/api/resume").status_code == 401
    store = api_env.store()
    try:
        assert store.halted() is None
    finally:
        store.close()


def test_page_and_docs_are_served_without_data(api_env: ApiEnv) -> None:
    with api_env.client() as client:
        page = client.get("/")
        chart_js = client.get("/vendor/lightweight-charts.js")
        docs = client.get("/docs")
        spec = client.get("/openapi.json").json()
    assert page.status_code == 200 and "dashboard.js" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert chart_js.status_code == 200 and "createChart" in chart_js.text
    assert docs.status_code == 200 and "/vendor/swagger-ui-bundle.js" in docs.text
    assert "cdn" not in docs.text
    routes = set(spec["paths"])
    assert {"/health", "/api/bars", "/api/halt", "/api/positions", "/metrics"} <= routes
    assert "/api/strategies" in routes


def test_bars_newest_last_and_bounded_by_limit(api_env: ApiEnv) -> None:
    seeded = api_env.seeded.bars["AAA"]
    with api_env.client() as client:
        ten = client.get("/api/bars", params={"symbol": "AAA", "limit": 10}, headers=api_env.auth)
        default = client.get("/api/bars", params={"symbol": "AAA"}, headers=api_env.auth).json()
        too_many = client.get(
            "/api/bars", params={"symbol": "AAA", "limit": 1001}, headers=api_env.auth
        )
        zero = client.get("/api/bars", params={"symbol": "AAA", "limit": 0}, headers=api_env.auth)
        unknown = client.get("/api/bars", params={"symbol": "ZZZ"}, headers=api_env.auth).json()
        no_symbol = client.get("/api/bars", headers=api_env.auth)
    bars = ten.json()
    assert [b["ts"] for b in bars] == [b.ts for b in seeded[-10:]]
    assert Decimal(str(bars[-1]["close"])) == seeded[-1].close
    assert bars[-1]["indicators"]["sma_50"] == pytest.approx(seeded[-1].indicators["sma_50"])
    assert len(default) == BARS["AAA"]  # under the default limit of 200
    assert too_many.status_code == 422
    assert zero.status_code == 422
    assert no_symbol.status_code == 422
    assert unknown == []


def test_lists(api_env: ApiEnv) -> None:
    seeded = api_env.seeded
    with api_env.client() as client:

        def get(path: str, **params: object) -> list[dict[str, object]]:
            response = client.get(path, params=params, headers=api_env.auth)
            assert response.status_code == 200, response.text
            result: list[dict[str, object]] = response.json()
            return result

        symbols = get("/api/symbols")
        signals = get("/api/signals", symbol="AAA")
        last_signal = get("/api/signals", limit=1)
        alerts = get("/api/alerts")
        orders = get("/api/orders")
        fills = get("/api/fills")
        news_bbb = get("/api/news", symbol="BBB")
    assert [(s["symbol"], s["bars"]) for s in symbols] == sorted(BARS.items())
    assert [s["id"] for s in signals] == [s.id for s in seeded.signals if s.symbol == "AAA"]
    assert [s["id"] for s in last_signal] == [seeded.signals[-1].id]
    assert [a["severity"] for a in alerts] == ["warning", "critical", "info"]
    # one row per order, in its latest state
    assert [(o["client_order_id"], o["status"]) for o in orders] == [
        (f"ft-{s.id}", "filled") for s in seeded.signals[:2]
    ]
    assert [f["id"] for f in fills] == [f.id for f in seeded.fills]
    assert [n["headline"] for n in news_bbb] == ["BBB recalls product", "AAA and BBB in talks"]
    assert news_bbb[0]["sentiment"] == -0.6


def test_positions_and_kill_switch(api_env: ApiEnv) -> None:
    aaa = api_env.seeded.bars["AAA"]
    buy = make_signal("AAA", aaa[10], Side.BUY, "sma_cross")
    store = api_env.store()
    try:
        store.add_fill(make_fill(buy, qty=5))
    finally:
        store.close()
    with api_env.client() as client:
        positions = client.get("/api/positions", headers=api_env.auth).json()
        halted = client.post("/api/halt", json={"reason": "test halt"}, headers=api_env.auth)
        health_halted = client.get("/health", headers=api_env.auth).json()["executor"]
        anonymous_halted = client.get("/health").json()
        store = api_env.store()
        try:
            reason_in_store = store.halted()
        finally:
            store.close()
        resumed = client.post("/api/resume", headers=api_env.auth)
        health_resumed = client.get("/health", headers=api_env.auth).json()["executor"]
    [row] = positions
    last = aaa[-1].close
    assert row["symbol"] == "AAA" and row["qty"] == "5"
    assert Decimal(row["avg_price"]) == aaa[10].close
    assert Decimal(row["last_price"]) == last
    assert Decimal(row["unrealized_pnl"]) == round((last - aaa[10].close) * 5, 2)
    assert halted.json() == {"state": "halted", "reason": "test halt"}
    assert health_halted == {"state": "halted", "reason": "test halt"}
    assert anonymous_halted == {"status": "ok"}  # no halt reason, loss or equity without a token
    assert reason_in_store == "test halt"
    assert resumed.json() == {"state": "running", "reason": None}
    assert health_resumed["state"] == "running"


def test_metrics(api_env: ApiEnv) -> None:
    with api_env.client() as client:
        text = client.get("/metrics", headers=api_env.auth).text
    n_bars = sum(BARS.values())
    assert f'flinktrade_api_events_in_total{{topic="bars"}} {float(n_bars)}' in text
    assert 'flinktrade_signals_total{side="buy",strategy="sma_cross"}' in text
    assert 'flinktrade_orders_total{status="filled"} 2.0' in text
    assert 'flinktrade_alerts_total{kind="stale_feed",severity="critical"} 1.0' in text
    assert "flinktrade_order_latency_seconds_count 2.0" in text
    assert 'flinktrade_api_consumer_lag{topic="signals"} 0.0' in text


def _stream_url(env: ApiEnv, query: str) -> str:
    return env.server.url.replace("http://", "ws://") + "api/stream?" + query


def test_stream_rejects_missing_and_wrong_tokens(api_env: ApiEnv) -> None:
    async def attempt() -> None:
        with pytest.raises(websockets.InvalidStatus) as rejected:
            async with websockets.connect(_stream_url(api_env, "topics=signals&token=wrong")):
                pass
        assert rejected.value.response.status_code == 403
        async with websockets.connect(_stream_url(api_env, "topics=signals")) as ws:
            await ws.send(json.dumps({"token": "wrong"}))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008

    asyncio.run(attempt())


def test_stream_pushes_a_signal_written_after_the_client_is_ready(api_env: ApiEnv) -> None:
    """A signal written to the topic after the stream said ``ready`` is pushed to the client
    (waited for with a deadline; how fast is a benchmark's question, not a test's)."""
    bar = api_env.seeded.bars["BBB"][-1]
    signal = make_signal("BBB", bar, Side.SELL, "stream_test")

    async def follow() -> dict[str, object]:
        async with websockets.connect(_stream_url(api_env, "topics=signals,alerts")) as ws:
            await ws.send(json.dumps({"token": api_env.token}))
            ready = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert ready == {"type": "ready", "topics": ["alerts", "signals"]}
            api_env.producer.send(signal, api_env.settings.api.topics.signals)
            await asyncio.to_thread(api_env.producer.flush, 10)
            deadline = time.monotonic() + 15
            while (left := deadline - time.monotonic()) > 0:
                message = json.loads(await asyncio.wait_for(ws.recv(), left))
                if message["topic"] == "signals" and message["data"]["id"] == signal.id:
                    return dict(message["data"])
            raise AssertionError("the signal was not pushed within 15 s")

    pushed = asyncio.run(follow())
    assert (pushed["symbol"], pushed["side"], pushed["strategy"]) == ("BBB", "sell", "stream_test")


def test_stream_header_token_and_symbol_filter(api_env: ApiEnv) -> None:
    bars = api_env.seeded.bars
    wanted = make_signal("AAA", bars["AAA"][-1], Side.BUY, "filter_test")
    other = make_signal("BBB", bars["BBB"][-2], Side.BUY, "filter_test")

    async def follow() -> list[str]:
        url = _stream_url(api_env, "topics=signals&symbols=AAA")
        async with websockets.connect(url, additional_headers=api_env.auth) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "ready"
            api_env.producer.send(other, api_env.settings.api.topics.signals)
            api_env.producer.send(wanted, api_env.settings.api.topics.signals)
            await asyncio.to_thread(api_env.producer.flush, 10)
            message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            return [message["data"]["id"]]

    assert asyncio.run(follow()) == [wanted.id]


def test_token_rule() -> None:
    unset = Settings().model_copy(update={"api": Settings().api.model_copy(update={"token": None})})
    with pytest.raises(ConfigError, match="FLINKTRADE_API_TOKEN"):
        resolve_token(unset, "0.0.0.0")
    token, generated = resolve_token(unset, "127.0.0.1")
    assert generated and len(token.get_secret_value()) >= 32
    assert resolve_token(unset, "127.0.0.1")[0] != token
    configured = unset.model_copy(
        update={"api": unset.api.model_copy(update={"token": SecretStr("s3cret")})}
    )
    assert resolve_token(configured, "0.0.0.0") == (SecretStr("s3cret"), False)
    assert "s3cret" not in repr(configured.api)


def test_lists_page_back_with_before(api_env: ApiEnv) -> None:
    alerts = api_env.seeded.alerts  # three, a minute apart
    with api_env.client() as client:

        def page(**params: object) -> list[str]:
            response = client.get("/api/alerts", params=params, headers=api_env.auth)
            assert response.status_code == 200, response.text
            return [item["id"] for item in response.json()]

        newest = page(limit=2)
        older = page(limit=2, before=alerts[1].ts)
        none = page(before=alerts[0].ts)
        negative = client.get("/api/alerts", params={"before": -1}, headers=api_env.auth)
    assert newest == [a.id for a in alerts[1:]]
    assert older == [alerts[0].id]
    assert none == []
    assert negative.status_code == 422
