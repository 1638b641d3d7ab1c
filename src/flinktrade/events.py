"""The events on the wire, one frozen model per topic, and their JSON codec.

Units everywhere: ``ts`` is event time and ``ingest_ts`` the time flinktrade first saw the record,
both epoch milliseconds UTC. Prices are ``Decimal`` and travel as exact JSON numbers (never through a
binary float), quantities are integers. Derived statistics (VWAP, indicators, sentiment, strength)
are floats.

The models bound every field, and the job's Java trade parser (``jvm/udf``) applies the same
bounds, so a record one side accepts never breaks the other: a ``Price`` is finite, at least
``MIN_PRICE`` (1e-6), at most ``MAX_PRICE`` and has at most six decimals (it fits
``DECIMAL(18, 6)`` exactly); a ``Symbol`` is 1 to 16 printable ASCII characters (no space, no
control character); a size is a positive JSON integer up to ``MAX_SIZE``; event times are JSON
integers in ``[0, MAX_TS_MS]`` (1970 to 2100). A bar's low is at most its open and close, which
are at most its high. ``decode`` reads the JSON numbers of priced events exactly (never through a
float). A dead letter alone takes any time: it must always be buildable.

Every event has a deterministic ``id`` so any consumer can drop repeats: trades keep the provider's
id, signals hash strategy + symbol + bar time, alerts hash kind + symbol + time.
"""

from __future__ import annotations

import hashlib
import json
import time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    field_validator,
    model_validator,
)

from flinktrade.errors import FlinktradeError


def _decimal_json(value: Decimal) -> float | str:
    """A Decimal as a JSON number when a float carries its exact digits, else as a string.

    JSON numbers are what every consumer (Flink SQL, dashboards) reads natively; the float's
    shortest repr is printed, so the text on the wire is the Decimal's own digits.

    A Decimal written in at most 15 characters has at most 15 significant digits, and every such
    number within the double's normal range is the float's shortest repr (``DBL_DIG`` is 15): that
    is decided from its text, without the comparison (a third of the cost; pydantic calls this
    for every price of every event it writes). The float is parsed from that text, as
    ``Decimal.__float__`` would do again from a text of its own.
    """
    text = str(value)
    as_float = float(text)
    if len(text) <= 15 and 1e-300 < abs(as_float) < 1e300:
        return as_float
    if Decimal(repr(as_float)) == value:
        return as_float
    return text


PRICE_DECIMALS = 6
"""Decimals a price may have: the job's bars are ``DECIMAL(18, 6)``."""
MIN_PRICE = Decimal("0.000001")
MAX_PRICE = Decimal("999999999999.999999")
"""The largest ``DECIMAL(18, 6)``."""
MAX_SIZE = 10**12
"""The largest trade size, volume or quantity (far below BIGINT's range, so sums stay exact)."""
MAX_TS_MS = 4_102_444_800_000
"""2100-01-01T00:00:00Z: no event time lies beyond it."""
MAX_SYMBOL_CHARS = 16
MAX_INTERVAL_MS = 366 * 86_400_000
"""The longest bar interval (a year)."""
_PRICE_STEP = Decimal(1).scaleb(-PRICE_DECIMALS)


def price_problem(price: Decimal) -> str | None:
    """Why ``price`` is not a valid price (None if it is): the one rule, shared with the parsers."""
    if not price.is_finite():
        return f"price is {price}"
    if price < MIN_PRICE:
        return (
            f"price {price} is below {MIN_PRICE}" if price > 0 else f"price {price} is not positive"
        )
    if price > MAX_PRICE:
        return f"price {price:.6E} is above {MAX_PRICE}"
    if price != price.quantize(_PRICE_STEP):
        return f"price {price} has more than {PRICE_DECIMALS} decimals"
    return None


def symbol_problem(symbol: str) -> str | None:
    """Why ``symbol`` is not a valid symbol (None if it is): 1-16 printable ASCII characters."""
    if not symbol:
        return "symbol is empty"
    if len(symbol) > MAX_SYMBOL_CHARS:
        return f"symbol {symbol[:20]!r}... is longer than {MAX_SYMBOL_CHARS} characters"
    if not all("!" <= ch <= "~" for ch in symbol):
        return f"symbol {symbol!r} has a space, control or non-ASCII character"
    return None


def _valid_price(value: Decimal) -> Decimal:
    problem = price_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _valid_quote_price(value: Decimal) -> Decimal:
    return value if value == 0 else _valid_price(value)


def _valid_symbol(value: str) -> str:
    problem = symbol_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _valid_time(value: int) -> int:
    if not 0 <= value <= MAX_TS_MS:
        raise ValueError(f"{value} is not between 1970 and 2100 (epoch ms)")
    return value


def _finite_positive(value: Decimal) -> Decimal:
    if not value.is_finite() or value <= 0:
        raise ValueError(f"{value} is not a positive number")
    return value


_JSON_DECIMAL = PlainSerializer(_decimal_json, when_used="json")

Price = Annotated[Decimal, AfterValidator(_valid_price), _JSON_DECIMAL]
"""A price: exact decimal in ``[MIN_PRICE, MAX_PRICE]`` with at most six decimals."""
QuotePrice = Annotated[Decimal, AfterValidator(_valid_quote_price), _JSON_DECIMAL]
"""A quoted price: a ``Price``, or 0 for an empty side of the book."""
OrderPrice = Annotated[Decimal, AfterValidator(_finite_positive), _JSON_DECIMAL]
"""A broker's order price (a limit, an average fill): finite and positive, any decimals."""
Symbol = Annotated[str, AfterValidator(_valid_symbol)]
"""A ticker: 1-16 printable ASCII characters."""
Size = Annotated[int, Field(gt=0, le=MAX_SIZE, strict=True)]
"""A trade size: a positive whole number of shares up to ``MAX_SIZE`` (a JSON integer)."""
Quantity = Annotated[Decimal, Field(gt=0, le=MAX_SIZE, allow_inf_nan=False)]
"""A filled quantity (fractional shares allowed), positive up to ``MAX_SIZE``."""
EventTime = Annotated[int, Field(strict=True), AfterValidator(_valid_time)]
"""Epoch milliseconds UTC between 1970 and 2100; a whole JSON number (``1.5e12`` is refused, as
the job's Java parser refuses it)."""


def now_ms() -> int:
    """Wall-clock epoch milliseconds (UTC); only for ``ingest_ts``, never for event time."""
    return time.time_ns() // 1_000_000


# pydantic's own slots of a model (what ``model_construct`` fills), set through their descriptors
_put_dict, _put_fields_set, _put_extra, _put_private = (
    vars(BaseModel)[slot].__set__
    for slot in (
        "__dict__",
        "__pydantic_fields_set__",
        "__pydantic_extra__",
        "__pydantic_private__",
    )
)
_Model = TypeVar("_Model", bound=BaseModel)


def assembled(model: type[_Model], fields: dict[str, Any], fields_set: set[str]) -> _Model:
    """``model(**fields)`` filled as ``model_construct`` fills it, without validating: only for
    values the caller has checked against the model's rules (``bars.make_bar``, the analytics
    bar; each pinned by tests to the validated model and its bytes). ``fields`` in the model's
    field order; ``fields_set`` what a keyword construction would mark as given."""
    event = object.__new__(model)
    _put_dict(event, fields)
    _put_fields_set(event, fields_set)
    _put_extra(event, None)
    _put_private(event, None)
    return event


def stable_id(*parts: object) -> str:
    """A short deterministic id: the first 32 hex digits of SHA-256 over the parts."""
    text = "|".join(str(p) for p in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class DecodeError(FlinktradeError):
    """A record could not be decoded into an event; ``reason`` says why, for the dead-letter."""


class Event(BaseModel):
    """Base of all wire events."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)
    topic: ClassVar[str] = ""
    exact_json: ClassVar[bool] = False
    """``decode`` reads JSON numbers as exact decimals (events with prices)."""

    ts: EventTime = Field(description="Event time, epoch milliseconds UTC.")
    ingest_ts: EventTime = Field(default_factory=now_ms, description="First seen, epoch ms UTC.")

    @property
    def key(self) -> bytes | None:
        """The Kafka key: the symbol for per-symbol events, so one symbol stays in order."""
        symbol = getattr(self, "symbol", None)
        return symbol.encode() if isinstance(symbol, str) else None


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertKind(StrEnum):
    """Every ``Alert.kind`` flinktrade emits, grouped by the stage that emits it (the list with
    what each means is ``docs/alerts.md``).

    Producers build alerts from these members; consumers compare against them. On the wire the
    kind stays a plain string, so an alert of a kind not listed here (an older or newer producer)
    still decodes and is shown by its text.
    """

    # the job (pipeline/): per-bar rules, per-story and per-trade alerts, refused input
    PRICE_JUMP = "price_jump"
    PRICE_GAP = "price_gap"
    VOLUME_SPIKE = "volume_spike"
    NEWS_SHOCK = "news_shock"
    STALE_FEED = "stale_feed"
    STRATEGY_ERROR = "strategy_error"
    LARGE_TRADE = "large_trade"
    BAD_BAR = "bad_bar"
    BAD_NEWS = "bad_news"
    # ingest (ingest/live.py): the Alpaca streams
    STREAM_SILENT = "stream_silent"
    TRADING_STATUS = "trading_status"
    # the executor (execution/)
    HALT = "executor.halt"
    KILL_SWITCH = "executor.kill_switch"
    ORDER_DENIED = "executor.order_denied"
    ORDER_REJECTED = "executor.order_rejected"
    RECONCILIATION_FAILED = "executor.reconciliation_failed"
    RECONCILED = "executor.reconciled"


class OrderType(StrEnum):
    """What kind of order an intent asks for (Alpaca's ``type``)."""

    MARKET = "market"
    LIMIT = "limit"
    STOP = "stop"
    STOP_LIMIT = "stop_limit"
    TRAILING_STOP = "trailing_stop"


class TimeInForce(StrEnum):
    """How long an order works (Alpaca's ``time_in_force``)."""

    DAY = "day"
    GTC = "gtc"
    OPG = "opg"  # at the opening auction only
    CLS = "cls"  # at the closing auction only
    IOC = "ioc"  # fill what can be filled at once, cancel the rest
    FOK = "fok"  # fill all at once or nothing


class OrderClass(StrEnum):
    """How an order is tied to others (Alpaca's ``order_class``)."""

    SIMPLE = "simple"
    BRACKET = "bracket"  # an entry with a take-profit and a stop-loss exit
    OCO = "oco"  # two exits of an open position: the first to fill cancels the other
    OTO = "oto"  # an entry with one exit


class ExitReason(StrEnum):
    """Why a position was closed (a backtest's ``trades.csv`` column ``exit_reason``)."""

    SIGNAL = "signal"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"
    TRAILING_STOP = "trailing_stop"
    END = "end"


Percent = Annotated[Decimal, Field(gt=0, lt=100, allow_inf_nan=False), _JSON_DECIMAL]
"""A percentage of a price, strictly between 0 and 100 (``2`` is 2 %)."""


class OrderSpec(BaseModel):
    """The order a strategy asks for with a signal; no ``order`` on a signal is a plain market
    order sized by the executor (the behaviour of every strategy written before orders had types).

    Entry: ``type`` with the prices it needs (``limit_price`` for limit and stop-limit,
    ``stop_price`` for stop and stop-limit, one of ``trail_percent``/``trail_price`` for a trailing
    stop), ``time_in_force``, ``extended_hours``, and the size: ``qty`` in shares (fractional where
    the broker allows) or ``notional`` in dollars, or neither (the executor's sizing decides).

    Exits, placed when the entry fills and cancelled together (a bracket, or OTO with one exit):
    absolute prices (``take_profit_price``, ``stop_loss_price`` with an optional
    ``stop_loss_limit_price``) or percentages measured from the entry's fill price
    (``take_profit_pct``, ``stop_loss_pct``), or a trailing stop of ``trail_pct`` from the
    position's best price since the entry. ``order_class`` is derived from the exits unless it is
    ``oco``: an exit-only pair for a position already open (the signal's side closes it).

    A field this model does not know is refused (``extra="forbid"``), unlike the events' own
    fields: a misspelt exit (``takeprofit_pct``) must become a dead letter naming the field, never
    a plain market order without its exits. The model checks the types of the fields only; ``orders.order_problem`` applies the rules that
    tie fields together (Alpaca's own), so a signal with a bad combination is denied with a reason
    by the executor and refused by the backtester, never crashes a consumer.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: OrderType = OrderType.MARKET
    time_in_force: TimeInForce = TimeInForce.DAY
    limit_price: Price | None = None
    stop_price: Price | None = None
    trail_percent: Percent | None = None
    trail_price: Price | None = None
    extended_hours: bool = False
    qty: Quantity | None = None
    notional: OrderPrice | None = None
    oco: bool = False
    take_profit_price: Price | None = None
    stop_loss_price: Price | None = None
    stop_loss_limit_price: Price | None = None
    take_profit_pct: Percent | None = None
    stop_loss_pct: Percent | None = None
    trail_pct: Percent | None = None

    @property
    def has_take_profit(self) -> bool:
        return self.take_profit_price is not None or self.take_profit_pct is not None

    @property
    def has_stop_loss(self) -> bool:
        return self.stop_loss_price is not None or self.stop_loss_pct is not None

    @property
    def exits(self) -> int:
        """How many exits the order carries (a trailing-stop exit counts as one)."""
        return self.has_take_profit + self.has_stop_loss + (self.trail_pct is not None)

    @property
    def order_class(self) -> OrderClass:
        if self.oco:
            return OrderClass.OCO
        if self.has_take_profit and self.has_stop_loss:
            return OrderClass.BRACKET
        if self.exits:
            return OrderClass.OTO
        return OrderClass.SIMPLE

    @property
    def is_plain(self) -> bool:
        """A plain market day order without exits: what a signal without ``order`` means."""
        return self == PLAIN_ORDER


PLAIN_ORDER = OrderSpec()


class Trade(Event):
    """One print on the tape (``market.trades``)."""

    topic: ClassVar[str] = "market.trades"
    exact_json: ClassVar[bool] = True
    id: str = Field(min_length=1, description="The provider's trade id.")
    symbol: Symbol
    price: Price
    size: Size
    exchange: str | None = None


class Bar(Event):
    """An OHLCV bar over ``[ts, ts + interval_ms)`` (``market.bars`` from providers)."""

    topic: ClassVar[str] = "market.bars"
    exact_json: ClassVar[bool] = True
    symbol: Symbol
    open: Price
    high: Price
    low: Price
    close: Price
    volume: int = Field(ge=0, le=MAX_SIZE, strict=True)
    vwap: float | None = Field(None, allow_inf_nan=False)
    trades: int | None = Field(None, ge=0, le=MAX_SIZE, strict=True)
    interval_ms: int = Field(60_000, gt=0, le=MAX_INTERVAL_MS)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (
            not self.low <= min(self.open, self.close)
            or not max(self.open, self.close) <= self.high
        ):
            raise ValueError(
                f"inconsistent bar: low {self.low}, open {self.open}, close {self.close},"
                f" high {self.high} (want low <= open, close <= high)"
            )
        return self

    @property
    def id(self) -> str:
        return f"{self.symbol}:{self.interval_ms}:{self.ts}"


class AnalyticsBar(Bar):
    """A bar built by the job, with the indicators known at its close (``analytics.bars``)."""

    topic: ClassVar[str] = "analytics.bars"
    indicators: dict[str, float | None] = Field(default_factory=dict)


class NewsItem(Event):
    """A news story about one or more symbols (``market.news``); keyed by its first symbol."""

    topic: ClassVar[str] = "market.news"
    id: str = Field(min_length=1)
    headline: str
    summary: str = ""
    source: str = ""
    url: str | None = None
    symbols: list[Symbol] = Field(default_factory=list)
    sentiment: float | None = Field(None, ge=-1.0, le=1.0)

    @property
    def key(self) -> bytes | None:
        return self.symbols[0].encode() if self.symbols else None


class Signal(Event):
    """A strategy's decision on a bar (``trading.signals``). ``ts`` is the bar's close time."""

    topic: ClassVar[str] = "trading.signals"
    exact_json: ClassVar[bool] = True
    id: str
    strategy: str
    symbol: Symbol
    side: Side
    price: Price = Field(description="The close of the bar that triggered the signal.")
    bar_ts: EventTime = Field(description="Start of the bar that triggered the signal, epoch ms.")
    strength: float = Field(1.0, ge=0.0, le=1.0)
    reason: str = ""
    indicators: dict[str, float | None] = Field(default_factory=dict)
    order: OrderSpec | None = Field(
        None, description="The order asked for; none is a plain market order the executor sizes."
    )

    @staticmethod
    def make_id(strategy: str, symbol: str, bar_ts: int) -> str:
        return stable_id("signal", strategy, symbol, bar_ts)


class Alert(Event):
    """Something a human should know about (``alerts``).

    ``kind`` is one of ``AlertKind`` when flinktrade made the alert, but it is typed ``str``: a
    record of a kind this version does not know decodes all the same."""

    topic: ClassVar[str] = "alerts"
    id: str
    kind: str
    severity: Severity = Severity.WARNING
    symbol: str | None = None
    message: str
    value: float | None = None
    threshold: float | None = None

    @staticmethod
    def make_id(kind: str, symbol: str | None, ts: int) -> str:
        return stable_id("alert", kind, symbol or "", ts)


class Quote(Event):
    """Best bid and offer at ``ts`` (``market.quotes``)."""

    topic: ClassVar[str] = "market.quotes"
    exact_json: ClassVar[bool] = True
    symbol: Symbol
    bid_price: QuotePrice
    bid_size: int = Field(ge=0, le=MAX_SIZE)
    ask_price: QuotePrice
    ask_size: int = Field(ge=0, le=MAX_SIZE)
    bid_exchange: str | None = None
    ask_exchange: str | None = None

    @property
    def id(self) -> str:
        return f"{self.symbol}:{self.ts}:{self.bid_price}:{self.ask_price}"


class OrderStatus(StrEnum):
    """Order states as Alpaca names them; the final ones never change again."""

    PENDING = "pending"  # intent stored, not yet acknowledged by the broker
    NEW = "new"
    ACCEPTED = "accepted"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"
    DENIED = "denied"  # refused by flinktrade's own risk checks, never sent

    @property
    def final(self) -> bool:
        return self in _FINAL_STATUSES


_FINAL_STATUSES = {
    OrderStatus.FILLED,
    OrderStatus.CANCELED,
    OrderStatus.EXPIRED,
    OrderStatus.REJECTED,
    OrderStatus.DENIED,
}


class OrderEvent(Event):
    """One state of an order (``trading.orders``); every change is a new record.

    ``id`` is the broker's order id (the ``client_order_id`` until the broker has answered);
    ``event_id`` is unique per state change, so consumers drop repeats by it. The order's shape
    (``type``, its prices, ``time_in_force``, ``order_class``) and, for an exit, its entry
    (``parent_client_order_id``) and ``leg`` are optional: records written before orders had
    types decode unchanged.
    """

    topic: ClassVar[str] = "trading.orders"
    exact_json: ClassVar[bool] = True
    event_id: str
    id: str
    client_order_id: str
    signal_id: str | None = None
    strategy: str | None = None
    symbol: Symbol
    side: Side
    qty: Decimal | None = None
    notional: Decimal | None = None
    type: str = "market"
    limit_price: OrderPrice | None = None
    stop_price: OrderPrice | None = None
    trail_percent: OrderPrice | None = None
    trail_price: OrderPrice | None = None
    time_in_force: str | None = None
    order_class: str | None = None
    extended_hours: bool | None = None
    parent_client_order_id: str | None = Field(
        None, description="The entry this order is an exit of (its leg says which)."
    )
    leg: str | None = Field(None, description="entry, take_profit, stop_loss or trailing_stop.")
    status: OrderStatus
    filled_qty: Decimal = Decimal(0)
    filled_avg_price: OrderPrice | None = None
    reason: str | None = None
    broker: str = "sim"

    @staticmethod
    def make_event_id(client_order_id: str, status: str, filled_qty: Decimal) -> str:
        return stable_id("order", client_order_id, status, filled_qty)


class Fill(Event):
    """An execution of (part of) an order (``trading.fills``); ``id`` is the execution id."""

    topic: ClassVar[str] = "trading.fills"
    exact_json: ClassVar[bool] = True
    id: str
    order_id: str
    client_order_id: str
    strategy: str | None = None
    symbol: Symbol
    side: Side
    qty: Quantity
    price: Price
    commission: Decimal = Decimal(0)
    position_qty: Decimal | None = None
    broker: str = "sim"


MAX_DEAD_REASON_CHARS = 500
"""A dead letter's ``reason`` is cut to this many characters."""
MAX_DEAD_PAYLOAD_BYTES = 64 * 1024
"""A dead letter's ``payload`` is cut to this many bytes of UTF-8, so a dead letter always fits the
broker's default 1 MB message limit, however large the record it stands for."""


def cut_text(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never in the middle of a character."""
    data = text.encode("utf-8", errors="replace")
    if len(data) <= max_bytes:
        return text
    return data[:max_bytes].decode("utf-8", errors="ignore")


class DeadLetter(Event):
    """A record that could not be used, with why and the original bytes (``deadletter``).

    Bounded whatever it is built from: ``reason`` to ``MAX_DEAD_REASON_CHARS`` characters,
    ``payload`` to ``MAX_DEAD_PAYLOAD_BYTES`` bytes (``payload_bytes`` keeps the original size)."""

    topic: ClassVar[str] = "deadletter"
    ts: int = Field(description="When the record was refused, or its own record time: any value.")
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    reason: str
    payload: str = Field(description="The original value, as text (invalid UTF-8 replaced).")
    payload_bytes: int | None = Field(
        None, description="The original value's size in bytes when ``payload`` was cut."
    )

    @field_validator("reason", mode="before")
    @classmethod
    def _cut_reason(cls, value: Any) -> Any:
        if isinstance(value, str) and len(value) > MAX_DEAD_REASON_CHARS:
            return value[: MAX_DEAD_REASON_CHARS - 3] + "..."
        return value

    @field_validator("payload", mode="before")
    @classmethod
    def _cut_payload(cls, value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            value = bytes(value[: MAX_DEAD_PAYLOAD_BYTES + 4]).decode("utf-8", errors="replace")
        if isinstance(value, str):
            return cut_text(value, MAX_DEAD_PAYLOAD_BYTES)
        return value

    @classmethod
    def of(
        cls,
        source_topic: str,
        reason: str,
        raw: bytes | str | None,
        *,
        ts: int,
        partition: int | None = None,
        offset: int | None = None,
    ) -> DeadLetter:
        """The dead letter for one record's original bytes (any size, any encoding)."""
        data = raw.encode("utf-8", errors="replace") if isinstance(raw, str) else (raw or b"")
        return cls(
            ts=ts,
            source_topic=source_topic,
            partition=partition,
            offset=offset,
            reason=reason,
            payload=data[:MAX_DEAD_PAYLOAD_BYTES].decode("utf-8", errors="replace"),
            payload_bytes=len(data) if len(data) > MAX_DEAD_PAYLOAD_BYTES else None,
        )


E = TypeVar("E", bound=Event)


def encode(event: Event) -> bytes:
    """The JSON bytes of an event, as every flinktrade topic carries them.

    ``model_dump_json(exclude_none=True).encode()``'s bytes, from the serializer itself: that
    method is this call with its defaults spelled out, and a ``decode`` to ``str`` that this
    would undo (~1.3 of a bar's ~6.4 us; every output of the job is encoded here)."""
    return event.__pydantic_serializer__.to_json(event, exclude_none=True)


def decode(kind: type[E], data: bytes | str) -> E:
    """Parse and validate one record; raises ``DecodeError`` with a one-line reason.

    Events with prices (``exact_json``) are parsed with JSON numbers read as exact decimals:
    pydantic's own JSON parser reads them through a binary float, which would round
    ``999999999999.999999`` up to an out-of-range 1e12, or ``1.00000000000000001`` down to a
    valid 1, where the job's Java parser sees the exact number."""
    try:
        if kind.exact_json:
            return kind.model_validate(_exact_json(data))
        return kind.model_validate_json(data)
    except ValidationError as exc:
        raise DecodeError(validation_reason(exc)) from None


def _exact_json(data: bytes | str) -> Any:
    try:
        text = data if isinstance(data, str) else bytes(data).decode("utf-8")
        return json.loads(text, parse_float=Decimal, parse_constant=Decimal)
    except UnicodeDecodeError as exc:
        raise DecodeError(f"record: invalid JSON: not UTF-8 at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise DecodeError(f"record: invalid JSON: {exc.msg} at {exc.pos}") from None
    except RecursionError:
        raise DecodeError("record: invalid JSON: nested too deep") from None


def validation_reason(exc: ValidationError) -> str:
    """A one-line reason for a dead letter: the first error's field and message."""
    first: dict[str, Any] = dict(exc.errors()[0])
    where = ".".join(str(p) for p in first.get("loc", ())) or "record"
    more = f" (+{exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
