"""Applying one symbol's due bars and stories to its model state, containing every failure.

``DueItems`` is the part of the job's ``AnalyticsOperator`` (``pipeline/operator.py``) that calls
the per-symbol model (``analytics.SymbolModel``). It is pure (no Flink, no Kafka), so the in-process
backtest engine (``backtest/inprocess.py``) drives the model through it too, and both engines treat
a hostile bar alike: a bar outside the ``events.Bar`` bounds, or one that ends before the bar the
model last saw (it came too late to keep the model's input in time order), is refused before the
model sees it, and an exception the model raises on a bar or a story is caught; the item becomes a
dead letter plus a ``bad_bar`` (or ``bad_news``) alert, the state is as if the item had never come,
and the next items go on.

Items are the operator's buffered tuples: a bar ``(ts, open, high, low, close, volume, vwap,
trades, interval_ms[, PROVIDER])`` with prices as exact decimal strings (or ``Decimal``), a story
``(id, ts, score, headline)``.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from flinktrade import events
from flinktrade.events import Alert, DeadLetter, Severity
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, SymbolModel, closed_bar


def _full_check(open_: Any, high: Any, low: Any, close: Any) -> bool:
    """``_bar_prices_ok`` without the C kernel: every bar gets the full check."""
    return False


_bar_prices_ok: Callable[[Any, Any, Any, Any], bool]
try:  # the C kernel's check of a bar's prices in the job's text (flinktrade/_exact.c), when built
    _bar_prices_ok = importlib.import_module("flinktrade._exact").bar_prices_ok
except (ImportError, AttributeError):
    _bar_prices_ok = _full_check

log = logging.getLogger(__name__)

BAR, NEWS = "bar", "news"
"""The kinds of a due item."""
STALE = "stale"
"""A ``stale_feed`` check at a time, ``(STALE, (time,))``: only in a journal ``rebuilt`` applies."""
PROVIDER = "provider"
"""The last element of a provider bar's item (and ``BAR_ROW_TYPE.text`` of one in the job); bars
built from trades have none."""

__all__ = ["BAR", "NEWS", "PROVIDER", "STALE", "DueItems", "failure_reason"]


def failure_reason(exc: Exception) -> str:
    """A dead letter's reason for ``exc``: a DecodeError's own text, else the type and message."""
    if isinstance(exc, events.DecodeError):
        return str(exc)
    text = str(exc).split("\n", 1)[0][:300]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class DueItems:
    """Applies one symbol's due bars and stories to its model state; nothing in them can raise.

    Pure (no Flink): ``AnalyticsOperator`` calls it from a timer, the tests call it directly. A bar
    outside the ``events.Bar`` bounds is refused before the model sees it; an exception from the
    model on a bar or a story is caught. Either way the item yields a dead letter and a ``bad_bar``
    / ``bad_news`` alert instead of its outputs, and the state is as if it had never come: when
    the model failed half-way, the state is rebuilt from ``stored()`` (the state before this
    batch) by re-applying the items that went through before (the model is deterministic; their
    outputs are already out; ``rebuilt``)."""

    def __init__(
        self, model: SymbolModel, sources: Mapping[str, str], *, checked_bars: bool = False
    ) -> None:
        """``sources``: the input topics (``trades``, ``bars``, ``news``), named as the source of
        a refused item's dead letter; ``checked_bars``: the bars were ``events.Bar`` already (their
        bounds checked), so the check before the model is skipped."""
        self.model = model
        self.sources = dict(sources)
        self.checked_bars = checked_bars

    def apply(
        self,
        state: dict[str, Any],
        symbol: str,
        due: Sequence[tuple[str, tuple[Any, ...]]],
        stored: Callable[[], dict[str, Any] | None],
        journal: list[tuple[str, tuple[Any, ...]]] | None = None,
    ) -> tuple[dict[str, Any], list[events.Event]]:
        """``(state after the items, their outputs in order)``; ``state`` is updated in place
        unless it had to be rebuilt. The items that went through are appended to ``journal``
        when one is given."""
        out: list[events.Event] = []
        applied: list[tuple[str, tuple[Any, ...]]] = []
        for entry in due:
            kind, item = entry
            try:
                out.extend(self._apply(state, symbol, kind, item))
            except Exception as exc:  # one bar or story never fails the job
                out.extend(self._refused(symbol, kind, item, exc))
                if not isinstance(exc, _Refused):  # the model may have half-updated the state
                    before = stored()
                    if before is state:  # a state backend that hands out the live object
                        log.error("cannot roll back the state of %s after a failure", symbol)
                    else:
                        state = self.rebuilt(before, symbol, applied)
                continue
            applied.append(entry)
            if journal is not None:
                journal.append(entry)
        return state, out

    def _apply(
        self, state: dict[str, Any], symbol: str, kind: str, item: tuple[Any, ...]
    ) -> list[events.Event]:
        """One buffered item through the model; raises ``_Refused`` for a bar it must not see."""
        if kind == NEWS:
            story_id, ts, score, headline = item
            return self.model.on_news(state, ScoredNews(story_id, symbol, ts, score, headline))
        ts, open_, high, low, close, volume, vwap, trades, interval_ms = item[:9]
        prices_ok = False
        if not (  # the backtester's are Decimals already; the job's are text
            type(open_) is Decimal
            and type(high) is Decimal
            and type(low) is Decimal
            and type(close) is Decimal
        ):
            prices_ok = _bar_prices_ok(open_, high, low, close)  # the job's shape, in order
            open_, high, low, close = Decimal(open_), Decimal(high), Decimal(low), Decimal(close)
        bar = closed_bar(symbol, ts, open_, high, low, close, volume, vwap, trades, interval_ms)
        if not self.checked_bars:
            problem = _bar_rest_problem(bar) if prices_ok else _bar_problem(bar)
            if problem is not None:
                raise _Refused(problem)
        last_end = state.get("last_end")
        if last_end is not None and ts + interval_ms < last_end:
            raise _Refused(f"late: it ends at {ts + interval_ms}, before the last bar's {last_end}")
        return self.model.on_bar(state, bar)

    def _refused(
        self, symbol: str, kind: str, item: tuple[Any, ...], exc: Exception
    ) -> list[events.Event]:
        """The dead letter and the alert for an item the model refused or failed on."""
        try:
            return self._letter_and_alert(symbol, kind, item, exc)
        except Exception:  # the item is malformed beyond reading: a plain dead letter
            log.exception("refusing a %s of %s", kind, symbol)
            reason = f"{symbol} {kind}: {failure_reason(exc)}"
            return [DeadLetter.of(self.sources.get("trades", kind), reason, repr(item), ts=0)]

    def _letter_and_alert(
        self, symbol: str, kind: str, item: tuple[Any, ...], exc: Exception
    ) -> list[events.Event]:
        refused = isinstance(exc, _Refused)
        if kind == NEWS:
            story_id, ts, _score, _headline = item
            source, what = self.sources.get("news", "news"), f"story {story_id}"
            alert_ts, alert_kind = int(ts), events.AlertKind.BAD_NEWS
        else:
            ts, *_rest = item
            interval_ms = int(item[8])
            source = self.sources.get("bars" if item[9:] == (PROVIDER,) else "trades", "bars")
            what = f"bar at {ts}"
            alert_ts, alert_kind = int(ts) + interval_ms, events.AlertKind.BAD_BAR
        alert_ts = min(max(alert_ts, 0), events.MAX_TS_MS)
        reason = str(exc) if refused else f"analytics failed: {failure_reason(exc)}"
        if not refused:
            log.warning("analytics failed on the %s of %s: %s", what, symbol, reason)
        payload = f"{kind} {symbol} {list(item)!r}"
        return [
            DeadLetter.of(source, f"{symbol} {what}: {reason}", payload, ts=alert_ts),
            Alert(
                id=Alert.make_id(alert_kind, symbol, alert_ts),
                kind=alert_kind,
                severity=Severity.WARNING if refused else Severity.CRITICAL,
                symbol=symbol,
                message=f"{symbol} {what} skipped: {reason}"[:500],
                ts=alert_ts,
            ),
        ]

    def rebuilt(
        self,
        stored: dict[str, Any] | None,
        symbol: str,
        applied: Sequence[tuple[str, tuple[Any, ...]]],
    ) -> dict[str, Any]:
        """``stored`` (or a fresh state) with ``applied`` re-applied, their outputs dropped: the
        items that went through, and ``(STALE, (time,))`` for a ``stale_feed`` check."""
        state = stored if stored is not None else self.model.initial_state()
        for kind, item in applied:
            try:
                if kind == STALE:
                    self.model.check_stale(state, symbol, item[0])
                else:
                    self._apply(state, symbol, kind, item)
            except Exception:  # it went through a moment ago; never fail the job
                log.exception("re-applying a %s of %s failed", kind, symbol)
        return state


class _Refused(ValueError):
    """A bar the model must not see (its message is the reason)."""


def _bar_problem(bar: ClosedBar) -> str | None:
    """Why the model must not see ``bar`` (the ``events.Bar`` bounds), or None."""
    for name in ("open", "high", "low", "close"):
        problem = events.price_problem(getattr(bar, name))
        if problem is not None:
            return f"{name}: {problem}"
    if not bar.low <= min(bar.open, bar.close) or not max(bar.open, bar.close) <= bar.high:
        return (
            f"inconsistent bar: low {bar.low}, open {bar.open}, close {bar.close}, high {bar.high}"
        )
    return _bar_rest_problem(bar)


def _bar_rest_problem(bar: ClosedBar) -> str | None:
    """``_bar_problem`` after its prices: for a bar whose prices ``_bar_prices_ok`` passed."""
    if not 0 <= bar.volume <= events.MAX_SIZE:
        return f"volume {bar.volume} out of range"
    if bar.vwap is not None and not math.isfinite(bar.vwap):
        return f"vwap is {bar.vwap}"
    if bar.interval_ms <= 0:
        return f"interval_ms {bar.interval_ms} is not positive"
    return None
