"""Notices rendered as Slack messages: Block Kit blocks plus a plain-text fallback.

Every message has a header, the symbol, what happened, the key numbers, the time in UTC and, when
configured, a link to the dashboard. A burst that the pacing holds back becomes one summary
("12 more volume_spike alerts on 5 symbols") that counts every notice it stands for. Text from
events is escaped for mrkdwn, and every block stays inside Slack's limits (at most 50 blocks,
3000 characters per section, 150 per header, 10 fields of 2000).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flinktrade.events import Alert, Fill, OrderEvent, OrderStatus, Severity, Side, Signal
from flinktrade.notify.notices import HALT_KINDS, SEVERITY_RANK, Notice
from flinktrade.notify.settings import EventType

Block = dict[str, Any]

MAX_BLOCKS = 50
MAX_HEADER = 150
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_FALLBACK = 3000
MAX_LINE = 400
"""Longest line of a summary (a kind or symbol can be long text)."""
SUMMARY_SYMBOLS = 8
"""How many symbols a summary line names before "+N more"."""

SEVERITY_EMOJI = {
    Severity.INFO: ":information_source:",
    Severity.WARNING: ":warning:",
    Severity.CRITICAL: ":rotating_light:",
}
ORDER_TITLES = {
    OrderStatus.NEW: "Order placed",
    OrderStatus.ACCEPTED: "Order placed",
    OrderStatus.PARTIALLY_FILLED: "Order partially filled",
    OrderStatus.FILLED: "Order filled",
    OrderStatus.CANCELED: "Order canceled",
    OrderStatus.EXPIRED: "Order expired",
    OrderStatus.REJECTED: "Order rejected",
}
"""Headers by status; any other status reads ``Order <status>``."""
ORDER_EMOJI = {
    OrderStatus.PARTIALLY_FILLED: ":hourglass_flowing_sand:",
    OrderStatus.FILLED: ":white_check_mark:",
    OrderStatus.CANCELED: ":x:",
    OrderStatus.EXPIRED: ":x:",
    OrderStatus.REJECTED: ":no_entry:",
}


@dataclass(frozen=True)
class Message:
    """A chat message: ``text`` is the fallback shown in notifications; ``blocks`` the layout."""

    text: str
    blocks: tuple[Block, ...] = field(default=())

    def payload(self) -> dict[str, Any]:
        """The JSON body Slack takes (webhook or ``chat.postMessage`` without the channel)."""
        body: dict[str, Any] = {"text": self.text}
        if self.blocks:
            body["blocks"] = list(self.blocks)
        return body

    def text_only(self) -> Message:
        return Message(self.text)


# -- small helpers -------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Text safe inside mrkdwn: ``&``, ``<`` and ``>`` escaped as Slack requires."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def utc(ts_ms: int) -> str:
    """``2024-05-01 14:30:00 UTC`` for epoch milliseconds."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def utc_range(first_ms: int, last_ms: int) -> str:
    first = datetime.fromtimestamp(first_ms / 1000, tz=UTC)
    last = datetime.fromtimestamp(last_ms / 1000, tz=UTC)
    if first.replace(microsecond=0) == last.replace(microsecond=0):
        return utc(first_ms)
    if first.date() == last.date():
        return f"{first:%Y-%m-%d %H:%M:%S}–{last:%H:%M:%S} UTC"
    return f"{first:%Y-%m-%d %H:%M:%S} – {last:%Y-%m-%d %H:%M:%S} UTC"


def num(value: Decimal | float | None) -> str:
    """A number for people: decimals keep their digits, floats get at most 4 decimals."""
    if value is None:
        return "n/a"
    if isinstance(value, Decimal):
        if value.is_finite() and not -12 <= value.adjusted() <= 15:
            return format(value, "E")  # 1E+400, not four hundred digits
        return format(value, "f")
    if value == 0:
        return "0"
    if abs(value) >= 0.01:
        return f"{value:,.4f}".rstrip("0").rstrip(".")
    return f"{value:.3g}"


def _money(value: Decimal) -> str:
    """``1,234.50``; beyond a thousand billion in scientific notation."""
    return f"{value:,.2f}" if value.adjusted() <= 15 else format(value, "E")


def _plural(count: int, word: str) -> str:
    return word if count == 1 else word + "s"


def header(text: str) -> Block:
    return {
        "type": "header",
        "text": {"type": "plain_text", "text": clip(text, MAX_HEADER), "emoji": True},
    }


def section(text: str | None = None, fields: Sequence[tuple[str, str]] = ()) -> Block:
    """A section; ``fields`` are (label, value) pairs with the value already escaped."""
    block: Block = {"type": "section"}
    if text:
        block["text"] = {"type": "mrkdwn", "text": clip(text, MAX_SECTION_TEXT)}
    if fields:
        block["fields"] = [
            {"type": "mrkdwn", "text": clip(f"*{label}*\n{value}", MAX_FIELD_TEXT)}
            for label, value in fields[:MAX_FIELDS]
        ]
    return block


def context(*parts: str) -> Block:
    return {
        "type": "context",
        "elements": [
            {"type": "mrkdwn", "text": clip(" · ".join(p for p in parts if p), MAX_SECTION_TEXT)}
        ],
    }


def _fallback(*parts: str) -> str:
    return clip(" — ".join(p for p in parts if p), MAX_FALLBACK)


# -- the formatter -------------------------------------------------------------------------------


class Formatter:
    """Renders notices, summaries of bursts, and test messages."""

    def __init__(self, dashboard_url: str | None = None) -> None:
        self.dashboard_url = dashboard_url

    def _link(self) -> str:
        return f"<{self.dashboard_url}|Open dashboard>" if self.dashboard_url else ""

    def notice(self, notice: Notice) -> Message:
        event = notice.event
        if isinstance(event, Alert):
            return self._alert(event)
        if isinstance(event, Signal):
            return self._signal(event)
        if isinstance(event, OrderEvent):
            return self._order(event, notice.ts)
        return self._fill(event, notice.ts)

    def _alert(self, alert: Alert) -> Message:
        title = (
            HALT_KINDS.get(alert.kind)
            or alert.kind.replace("_", " ").replace(".", " ").capitalize()
        )
        emoji = ":octagonal_sign:" if alert.kind in HALT_KINDS else SEVERITY_EMOJI[alert.severity]
        headline = f"{title}: {alert.symbol}" if alert.symbol else title
        fields = [("Symbol", escape(alert.symbol))] if alert.symbol else []
        fields.append(("Severity", alert.severity.value))
        numbers = []
        if alert.value is not None:
            fields.append(("Value", num(alert.value)))
            numbers.append(f"value {num(alert.value)}")
        if alert.threshold is not None:
            fields.append(("Threshold", num(alert.threshold)))
            numbers.append(f"threshold {num(alert.threshold)}")
        what = escape(alert.message) or escape(title)
        prefix = "" if alert.severity is Severity.INFO else f"[{alert.severity.value.upper()}] "
        return Message(
            _fallback(prefix + escape(headline), what, ", ".join(numbers), utc(alert.ts)),
            (
                header(f"{emoji} {headline}"),
                section(what, fields),
                context(utc(alert.ts), f"alert `{escape(alert.id)}`", self._link()),
            ),
        )

    def _signal(self, signal: Signal) -> Message:
        emoji = (
            ":chart_with_upwards_trend:"
            if signal.side is Side.BUY
            else ":chart_with_downwards_trend:"
        )
        headline = f"{signal.side.value.upper()} {signal.symbol} @ {num(signal.price)}"
        what = f"*{escape(signal.strategy)}*"
        if signal.reason:
            what += f": {escape(signal.reason)}"
        fields = [
            ("Symbol", escape(signal.symbol)),
            ("Side", signal.side.value),
            ("Price", num(signal.price)),
            ("Strength", num(signal.strength)),
        ]
        numbers = [f"price {num(signal.price)}", f"strength {num(signal.strength)}"]
        indicators = {k: v for k, v in signal.indicators.items() if k != "sentiment"}
        if indicators:
            fields.append(
                ("Indicators", "\n".join(f"{escape(k)} {num(v)}" for k, v in indicators.items()))
            )
            numbers += [f"{escape(k)} {num(v)}" for k, v in indicators.items()]
        sentiment = signal.indicators.get("sentiment")
        if sentiment is not None:
            fields.append(("Sentiment", f"{sentiment:+.2f}"))
            numbers.append(f"sentiment {sentiment:+.2f}")
        plain_what = escape(signal.strategy) + (
            f": {escape(signal.reason)}" if signal.reason else ""
        )
        return Message(
            _fallback(escape(headline), plain_what, ", ".join(numbers), utc(signal.ts)),
            (
                header(f"{emoji} {headline}"),
                section(what, fields),
                context(utc(signal.ts), f"signal `{escape(signal.id)}`", self._link()),
            ),
        )

    def _order(self, order: OrderEvent, ts: int) -> Message:
        status = order.status.value
        title = ORDER_TITLES.get(order.status) or f"Order {status.replace('_', ' ')}"
        emoji = ORDER_EMOJI.get(order.status, ":memo:")
        size = (
            num(order.qty)
            if order.qty is not None
            else (f"${num(order.notional)}" if order.notional is not None else "")
        )
        side = order.side.value
        headline = f"{title}: " + " ".join(p for p in (side.upper(), size, order.symbol) if p)
        fields = [("Symbol", escape(order.symbol)), ("Side", side)]
        if size:
            fields.append(("Quantity", size))
        kind = _order_type(order)
        if kind:
            fields.append(("Type", escape(kind)))
        fields.append(("Status", status))
        numbers = [f"type {escape(kind)}"] if kind else []
        if order.filled_qty:
            filled = num(order.filled_qty)
            if order.filled_avg_price is not None:
                filled += f" @ {num(order.filled_avg_price)}"
            fields.append(("Filled", filled))
            numbers.append(f"filled {filled}")
        if order.strategy:
            fields.append(("Strategy", escape(order.strategy)))
        what = escape(order.reason) if order.reason else ""
        return Message(
            _fallback(escape(headline), what, ", ".join(numbers), utc(ts)),
            (
                header(f"{emoji} {headline}"),
                section(what or None, fields),
                context(utc(ts), f"order `{escape(order.id)}`", self._link()),
            ),
        )

    def _fill(self, fill: Fill, ts: int) -> Message:
        side = fill.side.value
        headline = f"Fill: {side.upper()} {num(fill.qty)} {fill.symbol} @ {num(fill.price)}"
        notional = _money(fill.qty * fill.price)
        fields = [("Symbol", escape(fill.symbol)), ("Side", side)]
        fields += [("Quantity", num(fill.qty)), ("Price", num(fill.price)), ("Notional", notional)]
        numbers = [f"notional {notional}"]
        if fill.position_qty is not None:
            fields.append(("Position", num(fill.position_qty)))
            numbers.append(f"position {num(fill.position_qty)}")
        if fill.strategy:
            fields.append(("Strategy", escape(fill.strategy)))
        ids = [f"order `{escape(fill.order_id)}`"] if fill.order_id else []
        ids.append(f"fill `{escape(fill.id)}`")
        return Message(
            _fallback(escape(headline), ", ".join(numbers), utc(ts)),
            (
                header(f":moneybag: {headline}"),
                section(None, fields),
                context(utc(ts), *ids, self._link()),
            ),
        )

    def summary(self, notices: Sequence[Notice], *, more: bool) -> Message:
        """One message standing for ``notices`` (a burst): counts by kind, symbols, time range.

        ``more``: the channel just had a message, so this reads "12 more ...".
        """
        if not notices:
            raise ValueError("a summary needs at least one notice")
        total = len(notices)
        groups = _groups(notices)
        worst = max((n.severity for n in notices), key=SEVERITY_RANK.__getitem__)
        emoji = ":bell:" if worst is Severity.INFO else SEVERITY_EMOJI[worst]
        more_ = "more " if more else ""
        if len(groups) == 1:
            title = f"{total} {more_}{groups[0].label(total)}"
        else:
            title = f"{total} {more_}{_plural(total, 'notification')}"
        when = utc_range(min(n.ts for n in notices), max(n.ts for n in notices))
        sections = _summary_sections(groups, MAX_BLOCKS - 2)
        if len(groups) == 1:
            text = _fallback(f"{title}{groups[0].on_symbols()}", when)
        else:
            listed = groups[:10]
            parts = [f"{g.count} {g.label(g.count)}{g.on_symbols()}" for g in listed]
            rest = groups[10:]
            if rest:
                parts.append(_others(rest))
            text = _fallback(f"{title}: " + "; ".join(parts), when)
        return Message(
            text,
            (
                header(f"{emoji} {title}"),
                *(section(s) for s in sections),
                context(when, self._link()),
            ),
        )

    def test(self, route: str, selects: str, now_ms: int) -> Message:
        """The message ``flinktrade notify test`` sends to each route."""
        what = f"Route *{escape(route)}* is set up: {escape(selects)} will be posted here."
        return Message(
            _fallback(
                f"flinktrade test message: route {escape(route)} is set up",
                f"{escape(selects)} will be posted here",
                utc(now_ms),
            ),
            (
                header(":white_check_mark: flinktrade test message"),
                section(what),
                context(utc(now_ms), self._link()),
            ),
        )


def _order_type(order: OrderEvent) -> str:
    if not order.type:
        return ""
    if order.limit_price is not None:
        return f"{order.type} @ {num(order.limit_price)}"
    return order.type


@dataclass
class _Group:
    type: EventType
    kind: str
    count: int = 0
    severity: Severity = Severity.INFO
    symbols: dict[str, None] = field(default_factory=dict)

    def label(self, count: int) -> str:
        if self.type is EventType.FILL:
            return _plural(count, "fill")
        kind = self.kind.replace("_", " ") if self.type is EventType.ORDER else self.kind
        return f"{escape(kind)} {_plural(count, self.type.value)}"

    def on_symbols(self) -> str:
        n = len(self.symbols)
        return f" on {n} {_plural(n, 'symbol')}" if n else ""

    def line(self) -> str:
        bullet = ":rotating_light:" if self.severity is Severity.CRITICAL else "•"
        text = f"{bullet} *{self.count} {self.label(self.count)}*{self.on_symbols()}"
        if self.symbols:
            names = [escape(s) for s in list(self.symbols)[:SUMMARY_SYMBOLS]]
            more = len(self.symbols) - len(names)
            text += ": " + ", ".join(names) + (f" +{more} more" if more else "")
        return clip(text, MAX_LINE)


def _groups(notices: Iterable[Notice]) -> list[_Group]:
    groups: dict[tuple[EventType, str], _Group] = {}
    for notice in notices:
        group = groups.setdefault((notice.type, notice.kind), _Group(notice.type, notice.kind))
        group.count += 1
        if SEVERITY_RANK[notice.severity] > SEVERITY_RANK[group.severity]:
            group.severity = notice.severity
        if notice.symbol:
            group.symbols[notice.symbol] = None
    return sorted(
        groups.values(),
        key=lambda g: (-SEVERITY_RANK[g.severity], -g.count, g.type.value, g.kind),
    )


def _others(groups: Sequence[_Group]) -> str:
    count = sum(g.count for g in groups)
    return f"{count} more in {len(groups)} other {_plural(len(groups), 'group')}"


def _pack(lines: Sequence[str]) -> list[str]:
    """Lines joined into section texts of at most MAX_SECTION_TEXT characters each."""
    sections: list[str] = []
    current: list[str] = []
    size = 0
    for line in lines:
        if current and size + 1 + len(line) > MAX_SECTION_TEXT:
            sections.append("\n".join(current))
            current, size = [], 0
        size += len(line) + (1 if current else 0)
        current.append(line)
    if current:
        sections.append("\n".join(current))
    return sections


def _summary_sections(groups: Sequence[_Group], max_sections: int) -> list[str]:
    """The group lines as section texts; when they need more than ``max_sections`` sections, as
    many groups as fit and one last line that counts the rest, so every notice is accounted for."""
    lines = [g.line() for g in groups]
    sections = _pack(lines)
    if len(sections) <= max_sections:
        return sections
    low, high = 0, len(groups) - 1  # the largest number of groups listed that still fits
    while low < high:
        mid = (low + high + 1) // 2
        if len(_pack([*lines[:mid], "• …and " + _others(groups[mid:])])) <= max_sections:
            low = mid
        else:
            high = mid - 1
    return _pack([*lines[:low], "• …and " + _others(groups[low:])])
