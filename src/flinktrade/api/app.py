"""The FastAPI app: REST routes over what the feed has read, the WebSocket stream, the executor's
kill switch, Prometheus metrics and the dashboard page.

Every route that returns data or changes anything requires ``Authorization: Bearer <token>``,
checked before any request body is read (``security.Guard``: 401; bodies over
``max_body_bytes``: 413). ``/health`` answers without a token with its status only (``ok`` or
``degraded``); with the token it adds the details (broker, job, executor and its halt reason,
feed, lags). The page shell (``/``, ``/static``, ``/vendor``) and the API description (``/docs``,
``/openapi.json``) hold no data and are served without a token: the page asks for it.
``/api/positions`` and ``/api/strategies`` read the executor's order store (``positions``,
``strategies``: each poll reads only the fills recorded since the last). ``/api/halt``
and ``/api/resume`` use the executor's one ``execution.killswitch.KillSwitch``, as the CLI does:
both refuse (409) when the executor's order store does not exist, and resume can adopt the
broker's positions first. The
WebSocket takes the token as the ``token`` query parameter (never logged: see
``security.TokenRedaction``), an ``Authorization`` header, or its first message
(``{"token": "..."}``). No response carries a secret of the settings.
"""

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, WebSocket, status
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field, SecretStr
from starlette.websockets import WebSocketDisconnect

from flinktrade import __version__
from flinktrade.api.feed import Feed
from flinktrade.api.hub import CLOSE_TOO_SLOW, Hub, Subscriber
from flinktrade.api.metrics import ApiMetrics, SlackStats
from flinktrade.api.positions import PositionBook
from flinktrade.api.security import Guard, install_redaction
from flinktrade.api.state import KINDS, Item, MarketState
from flinktrade.api.strategies import StrategyBooks
from flinktrade.config import Settings
from flinktrade.errors import ConfigError, TransientError
from flinktrade.execution import killswitch
from flinktrade.execution.store import open_store

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
REPO_WEB_DIR = Path(__file__).resolve().parents[3] / "web"
VENDOR_FILES = {
    "lightweight-charts.js": "lightweight-charts/dist/lightweight-charts.standalone.production.js",
    "swagger-ui-bundle.js": "swagger-ui-dist/swagger-ui-bundle.js",
    "swagger-ui.css": "swagger-ui-dist/swagger-ui.css",
}
FIRST_MESSAGE_TIMEOUT_S = 10.0
CLOSE_POLICY = 1008  # policy violation: no or wrong token
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
    ),
}


class HaltRequest(BaseModel):
    reason: str = Field("set from the API", max_length=500, description="Why (shown in /health).")


class ResumeRequest(BaseModel):
    adopt_broker_positions: bool = Field(
        False, description="After a position mismatch: take the broker's positions as the truth."
    )
    broker: Literal["sim", "alpaca"] = Field(
        "alpaca", description="The broker whose positions are adopted."
    )


class KillSwitch(BaseModel):
    state: str = Field(description="running or halted")
    reason: str | None = None


class AppContext:
    """The app's parts, reachable from routes (``app.state.ctx``) and tests."""

    def __init__(self, settings: Settings, slack_stats: SlackStats | None) -> None:
        api = settings.api
        self.settings = settings
        self.metrics = ApiMetrics(slack_stats, api.max_label_values)
        self.state = MarketState(api.bars_per_symbol, api.events_kept, api.max_symbols)
        self.hub = Hub(self.metrics, api.stream_queue)
        self.feed = Feed(api, settings.kafka, self.state, self.metrics, self.hub.publish)
        self.store_path = settings.execution.store_path(settings.state_dir)
        self.switch = killswitch.KillSwitch(self.store_path)
        self.positions = PositionBook(self.store_path)
        self.strategies = StrategyBooks(self.store_path)
        self.web_dir = api.web_dir or REPO_WEB_DIR

    def kill_switch(self) -> KillSwitch:
        reason = self.switch.reason()
        return KillSwitch(state=killswitch.TradingState.of(reason), reason=reason)

    def executor_last_seen_s(self) -> float | None:
        """Seconds since the executor's last heartbeat in the store; None if it never ran."""
        if not self.store_path.exists():
            return None
        with open_store(self.store_path) as store:
            beat = store.heartbeat()
        return None if beat is None else round(beat.age_s(time.time_ns() // 1_000_000), 1)


def create_app(
    settings: Settings, *, token: SecretStr | None = None, slack_stats: SlackStats | None = None
) -> FastAPI:
    """The API over ``settings``' topics and order store, guarded by ``token`` (default: the
    configured ``settings.api.token``; one of them is required). ``slack_stats`` adds the Slack
    counters of a notifier running in the same process to ``/metrics``."""
    secret = token or settings.api.token
    if secret is None or not secret.get_secret_value():
        raise ConfigError("the API needs a token (FLINKTRADE_API_TOKEN)")
    expected = secret.get_secret_value().encode()
    install_redaction(secret.get_secret_value())
    ctx = AppContext(settings, slack_stats)
    api = settings.api

    def valid(candidate: str | None) -> bool:
        return candidate is not None and secrets.compare_digest(candidate.encode(), expected)

    bearer = HTTPBearer(auto_error=False, description="The API token (FLINKTRADE_API_TOKEN).")

    def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        if credentials is None or not valid(credentials.credentials):
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or wrong bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        ctx.hub.attach(asyncio.get_running_loop())
        ctx.feed.start()
        try:
            yield
        finally:
            await asyncio.to_thread(ctx.feed.stop)

    app = FastAPI(
        title="flinktrade",
        version=__version__,
        description="Live bars, signals, alerts, orders, fills and news; the executor's kill switch.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.ctx = ctx
    limit_param = Annotated[
        int,
        Query(ge=1, le=api.max_limit, description="At most this many, the newest (newest last)."),
    ]
    symbol_param = Annotated[str | None, Query(max_length=16, description="Only this symbol.")]

    @app.get("/health", tags=["health"])
    def health(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> JSONResponse:
        """``ok`` or ``degraded``; with the token also: broker reachable, job producing bars,
        executor running or halted (and why), feed, consumer lags."""
        feed = ctx.feed.status()
        ok = feed.broker_reachable and ctx.feed.error is None
        status_code = 200 if ok else 503
        if credentials is None or not valid(credentials.credentials):
            return JSONResponse({"status": "ok" if ok else "degraded"}, status_code=status_code)
        idle_after = api.job_idle_after_s
        job_running = feed.last_bar_age_s is not None and feed.last_bar_age_s < idle_after
        executor = ctx.kill_switch()
        body = {
            "status": "ok" if ok else "degraded",
            "broker": {"reachable": feed.broker_reachable},
            "job": {
                "state": "running" if job_running else "idle",
                "last_bar_age_s": feed.last_bar_age_s,
            },
            "executor": executor.model_dump(),
            "executor_last_seen_s": ctx.executor_last_seen_s(),
            "feed": {
                "caught_up": feed.caught_up,
                "error": None if ctx.feed.error is None else type(ctx.feed.error).__name__,
            },
            "lags": feed.lags,
        }
        return JSONResponse(body, status_code=status_code)

    router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], tags=["data"])

    @router.get("/symbols")
    def symbols() -> list[Item]:
        """Every symbol with bars: bar count, last close, time of the last bar."""
        return ctx.state.symbols()

    @router.get("/bars")
    def bars(
        symbol: Annotated[str, Query(min_length=1, max_length=16)],
        limit: limit_param = api.default_limit,
    ) -> list[Item]:
        """1-minute bars with their indicators (``analytics.bars``), oldest first."""
        return ctx.state.bars(symbol, limit)

    before_param = Annotated[
        int | None,
        Query(ge=0, description="Only items older than this (epoch ms): the next page back."),
    ]

    def listing(kind: str) -> Callable[..., list[Item]]:
        def route(
            limit: limit_param = api.default_limit,
            symbol: symbol_param = None,
            before: before_param = None,
        ) -> list[Item]:
            return ctx.state.recent(kind, limit, symbol, before)

        return route

    router.get("/signals", summary="Recent signals")(listing("signals"))
    router.get("/alerts", summary="Recent alerts")(listing("alerts"))
    router.get("/orders", summary="Recent orders, each in its latest state")(listing("orders"))
    router.get("/fills", summary="Recent fills")(listing("fills"))
    router.get("/news", summary="Recent news with sentiment")(listing("news"))

    @router.get("/positions")
    def positions() -> list[Item]:
        """Positions in the executor's order store, with average cost and P&L at the last bar
        (the store's fills are read incrementally: each poll reads only the new ones)."""
        return ctx.positions.rows(ctx.state.last_prices())

    @router.get("/strategies")
    def strategies() -> list[Item]:
        """Per-strategy books from the executor's fills: P&L (realised, unrealised at the last
        bar, commissions), trades and win rate (a trade is a round trip back to flat), exposure,
        positions, and the equity curve (at most 500 points, thinned by half when full). Fills
        without a strategy and adopted positions are in ``(manual)``."""
        symbols = ctx.state.symbols()
        prices = {s["symbol"]: Decimal(str(s["last"])) for s in symbols if s["last"] is not None}
        newest = max((int(s["ts"]) for s in symbols if s["ts"] is not None), default=None)
        return ctx.strategies.rows(prices, newest)

    @router.post("/halt", tags=["kill switch"])
    def halt(request: HaltRequest | None = None) -> KillSwitch:
        """Set the executor's kill switch: no new order is placed (survives restarts). 409 when
        the executor's order store does not exist (a kill switch there would stop nothing)."""
        reason = (request or HaltRequest()).reason
        try:
            ctx.switch.halt(reason)
        except ConfigError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        log.warning("kill switch set from the API: %s", reason)
        return ctx.kill_switch()

    @router.post("/resume", tags=["kill switch"])
    def resume(request: ResumeRequest | None = None) -> KillSwitch:
        """Clear the executor's kill switch, optionally adopting the broker's positions first
        (as ``flinktrade resume --adopt-broker-positions``). 409 when the order store does not
        exist or the broker is not configured; 503 when the broker cannot be reached."""
        asked = request or ResumeRequest()
        adopt = None
        if asked.adopt_broker_positions:
            adopt = killswitch.broker_named(settings, asked.broker)
        try:
            changes = ctx.switch.resume(adopt_from=adopt)
        except ConfigError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except TransientError as exc:
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
        for symbol, delta in changes.items():
            log.warning("position adopted from the broker via the API: %s %s", symbol, delta)
        log.warning("kill switch cleared from the API")
        return ctx.kill_switch()

    app.include_router(router)

    @app.get("/metrics", dependencies=[Depends(require_token)], tags=["health"])
    def metrics() -> Response:
        """Prometheus text: events in/out per topic, lag, signal/order/alert counts, latency."""
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.websocket("/api/stream")
    async def stream(
        websocket: WebSocket,
        topics: str = ",".join(KINDS),
        symbols: str = "",
        token: str | None = None,
    ) -> None:
        """Live events: ``{"type": "event", "topic": "signals", "data": {...}}`` per new event,
        after one ``{"type": "ready", "topics": [...]}``."""
        kinds = frozenset(t.strip() for t in topics.split(",") if t.strip())
        header = websocket.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            token = header[7:].strip()
        if token is not None and not valid(token):
            await websocket.close(CLOSE_POLICY)  # before accept: the handshake fails with 403
            return
        await websocket.accept()
        if token is None and not valid(await _first_message_token(websocket)):
            await websocket.close(CLOSE_POLICY, "missing or wrong token")
            return
        unknown = kinds - set(KINDS)
        if unknown or not kinds:
            await websocket.close(CLOSE_POLICY, f"unknown topics {sorted(unknown)}; use {KINDS}")
            return
        if len(ctx.hub) >= api.max_stream_clients:
            log.warning("stream: %d clients already; refusing one more", len(ctx.hub))
            await websocket.close(CLOSE_TOO_SLOW, "too many stream clients; try again later")
            return
        wanted = frozenset(s.strip() for s in symbols.split(",") if s.strip())
        subscriber = ctx.hub.subscribe(kinds, wanted)
        try:
            await websocket.send_text(json.dumps({"type": "ready", "topics": sorted(kinds)}))
            await _pump(websocket, subscriber, ctx.metrics)
        finally:
            ctx.hub.unsubscribe(subscriber)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    @app.get("/vendor/{name}", include_in_schema=False)
    def vendor(name: str) -> FileResponse:
        relative = VENDOR_FILES.get(name)
        path = None if relative is None else ctx.web_dir / "node_modules" / relative
        if path is None or not path.is_file():
            raise HTTPException(404, f"{name} is not installed: run `make setup`")
        return FileResponse(path, headers={"Cache-Control": "max-age=3600"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="flinktrade API",
            swagger_js_url="/vendor/swagger-ui-bundle.js",
            swagger_css_url="/vendor/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
        )

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_middleware(
        Guard,
        valid=valid,
        protected=lambda path: path.startswith("/api/") or path == "/metrics",
        max_body_bytes=api.max_body_bytes,
    )
    return app


async def _first_message_token(websocket: WebSocket) -> str | None:
    """The token of a client that sends it as its first message (JSON ``token`` or plain text)."""
    try:
        text = await asyncio.wait_for(websocket.receive_text(), FIRST_MESSAGE_TIMEOUT_S)
    except (TimeoutError, WebSocketDisconnect, KeyError, RuntimeError):
        return None
    try:
        message: Any = json.loads(text)
    except ValueError:
        return text.strip()
    if isinstance(message, dict) and isinstance(message.get("token"), str):
        return str(message["token"])
    return None


async def _pump(websocket: WebSocket, subscriber: Subscriber, metrics: ApiMetrics) -> None:
    """Send the subscriber's queue until the client leaves or falls too far behind."""

    async def send() -> None:
        while True:
            kind, text = await subscriber.queue.get()
            await websocket.send_text(text)
            metrics.events_out.labels(kind).inc()

    async def receive() -> None:  # the client may send pings; we only watch for it leaving
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return

    tasks = [
        asyncio.create_task(send()),
        asyncio.create_task(receive()),
        asyncio.create_task(subscriber.overflowed.wait()),
    ]
    try:
        done, _pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    if subscriber.overflowed.is_set():
        log.warning(
            "stream client too slow: %d messages queued; disconnecting", subscriber.queue.qsize()
        )
        await websocket.close(CLOSE_TOO_SLOW, "too slow")
        return
    for task in done:
        error = task.exception()
        if error is not None and not isinstance(error, WebSocketDisconnect):
            raise error
