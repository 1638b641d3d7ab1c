"""What the job does with one symbol's closed bars and news, as pure functions over one state.

``SymbolModel`` is the whole per-symbol logic of the job after the bars: indicators, the news
sentiment features, the anomaly rules and the strategies. It does no I/O and reads no clock (but
for the ``ingest_ts`` every event gets when it is made); its state is one picklable dict of plain
values and live ``__slots__`` objects, updated in place. The Flink operator (``operator.py``) keeps
that dict live and writes its ``snapshot`` (the same values as plain tuples, cheap to pickle) to
keyed state, feeding it bars and scored news in event-time order; tests and the backtester can
call it directly and get the same answers.

It is the per-bar hot path of every run and sweep, so it avoids per-bar work that changes no
output: indicators advance their live state in place (``IndicatorEngine.advance``); the
``AnalyticsBar`` and the strategies' ``BarView`` are built from values already of the right types
without re-validating them (anything else goes through pydantic as before); the price-gap and
price-jump rules first test their threshold on cheap figures (a float gap; the exact sd that
``volatility_<window>`` already computed) and recompute the rule's own figure only near it.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from flinktrade import events
from flinktrade.config import AnalyticsSettings
from flinktrade.errors import ConfigError
from flinktrade.events import Alert, AnalyticsBar, Severity, Signal
from flinktrade.indicators import DEFAULT_INDICATORS, IndicatorEngine
from flinktrade.pipeline.inputs import (
    BAR_INTERVAL_MS,
    ClosedBar,
    ScoredNews,
    StrategySpec,
    closed_bar,
    filled,
)
from flinktrade.strategies import BarView, Strategy, build

__all__ = [  # the model's inputs are defined in ``inputs`` (a module left uncompiled)
    "BAR_INTERVAL_MS",
    "SENTIMENT_COLUMNS",
    "ClosedBar",
    "ScoredNews",
    "StrategySpec",
    "SymbolModel",
    "build_all",
    "closed_bar",
]

log = logging.getLogger(__name__)

SENTIMENT_COLUMNS = ("sentiment", "sentiment_avg")
"""Indicator columns carrying news sentiment: the latest story's score and the decayed average."""
_MARGIN = 1e-6
"""Relative margin of the cheap threshold tests: beyond it, the exact figure cannot cross."""


def build_all(specs: Iterable[StrategySpec]) -> list[tuple[StrategySpec, Strategy]]:
    """Instantiate every configured strategy; their names must differ (they key state and ids)."""
    built = [(spec, build(spec.name, spec.params)) for spec in specs]
    names = [strategy.name for _spec, strategy in built]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ConfigError(
            f"two strategies are named {', '.join(repeated)}: give each a distinct 'name' param"
        )
    return built


_BAR_FIELDS_SET = frozenset(AnalyticsBar.model_fields) - {"ingest_ts"}
_ALERT_FIELDS_SET = frozenset(Alert.model_fields) - {"ingest_ts"}


def _analytics_bar(bar: Any, indicators: dict[str, float | None]) -> AnalyticsBar:
    """``AnalyticsBar(...)`` of ``bar`` (a ``ClosedBar``): what pydantic's validation would build,
    without it.

    Every field is already of its declared type here (the fallback below validates anything
    that is not), so the model is assembled as ``model_construct`` does, at a fraction of the
    cost; ``tests/unit/test_analytics.py`` pins it to the validated model and its bytes. ``bar``
    is typed ``Any`` on purpose: compiled by mypyc, a field read as its declared type would be
    checked or converted on the way (an int ``vwap`` taken for a float) and the tests of the
    types below could be folded away."""
    symbol, volume, trades, vwap = bar.symbol, bar.volume, bar.trades, bar.vwap
    if not (
        type(symbol) is str
        and 0 < len(symbol) <= 16
        and type(bar.ts) is int
        and type(volume) is int
        and volume >= 0
        and type(trades) is int
        and trades >= 0
        and type(bar.interval_ms) is int
        and (vwap is None or type(vwap) is float)
        and type(bar.open) is Decimal
        and type(bar.high) is Decimal
        and type(bar.low) is Decimal
        and type(bar.close) is Decimal
    ):
        return AnalyticsBar(
            symbol=symbol,
            ts=bar.ts,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=volume,
            vwap=vwap,
            trades=trades,
            interval_ms=bar.interval_ms,
            indicators=indicators,
        )
    return events.assembled(
        AnalyticsBar,
        {
            "ts": bar.ts,
            "ingest_ts": events.now_ms(),
            "symbol": symbol,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": volume,
            "vwap": vwap,
            "trades": trades,
            "interval_ms": bar.interval_ms,
            "indicators": indicators,
        },
        set(_BAR_FIELDS_SET),
    )


def _bar_view(
    bar: ClosedBar, indicators: dict[str, float | None], sentiment: float | None
) -> BarView:
    """``BarView(...)`` of ``bar``: the frozen dataclass filled in one step instead of eleven
    ``object.__setattr__`` calls (the same object; pinned by a test)."""
    return filled(
        BarView,
        {
            "symbol": bar.symbol,
            "ts": bar.ts,
            "end_ts": bar.ts + bar.interval_ms,
            "open": bar.open,
            "high": bar.high,
            "low": bar.low,
            "close": bar.close,
            "volume": bar.volume,
            "vwap": bar.vwap,
            "indicators": indicators,
            "sentiment": sentiment,
        },
    )


class SymbolModel:
    """Indicators, sentiment, alerts and strategies for one symbol at a time (state passed in)."""

    def __init__(self, specs: Sequence[StrategySpec], settings: AnalyticsSettings) -> None:
        self.settings = settings
        self.strategies = build_all(specs)
        wanted = set(DEFAULT_INDICATORS)
        self._volume_z = f"volume_z_{settings.volume_spike_window}"
        wanted.add(self._volume_z)
        for _spec, strategy in self.strategies:
            wanted |= {n for n in strategy.indicators() if n not in SENTIMENT_COLUMNS}
        self.engine = IndicatorEngine(wanted)
        # price_jump's window is volatility_<window>'s: its exact sd decides most bars cheaply
        volatility = f"volatility_{settings.price_jump_window}"
        self._returns_sd = volatility if volatility in self.engine.names else None
        # (state key, strategy, symbols it runs on or empty for all, columns its signals record)
        self._runs = [
            (strategy.name, strategy, spec.symbols, tuple(sorted(strategy.indicators())))
            for spec, strategy in self.strategies
        ]
        # the settings the per-bar path reads, as plain attributes (the settings are frozen)
        self._alerts = settings.alerts
        self._jump_window = settings.price_jump_window
        self._gap_near = settings.gap_pct * (1 - _MARGIN)  # the cheap tests' thresholds
        self._jump_near = settings.price_jump_z * (1 - _MARGIN)
        self._spike_z = settings.volume_spike_z

    def initial_state(self) -> dict[str, Any]:
        return {
            "ind": self.engine.start(),
            "strategies": {},
            "returns": [],  # the last price_jump_window log returns of close
            "returns_sd": None,  # their population sd when an indicator computes it
        }

    def snapshot(self, state: dict[str, Any]) -> dict[str, Any]:
        """``state`` with its indicators as ``IndicatorEngine.snapshot``'s tuple and the last close
        as its text: only plain values, which pickle in C at a fraction of the cost of the live
        objects (and of a ``Decimal``). The other values are the state's own: pickle the snapshot
        before the state changes again (the operator writes it to Flink state at once)."""
        snap = state.copy()
        snap["ind"] = self.engine.snapshot(state["ind"])
        last_close = snap.get("last_close")
        if last_close is not None:  # a Decimal pickles at several times the cost of its text
            snap["last_close"] = str(last_close)
        return snap

    def restore(self, snap: dict[str, Any]) -> dict[str, Any]:
        """The state ``snapshot`` made ``snap`` of, sharing no object with ``snap``: pickled by
        ``snapshot`` and unpickled, it continues exactly as the original would have (pinned by
        ``tests/unit/test_state_snapshot.py``). Raises ``ValueError`` (or ``TypeError``,
        ``KeyError``, ``decimal.InvalidOperation``) for anything that is not a snapshot. A snapshot
        written before the last close was kept as text (a ``Decimal``) restores alike."""
        if not isinstance(snap, dict) or "ind" not in snap or "strategies" not in snap:
            raise ValueError(f"not a model state snapshot: {type(snap).__name__}")
        return {  # in the snapshot's key order, which is the state's
            name: self.engine.restore(value)
            if name == "ind"
            else Decimal(value)
            if name == "last_close"
            else copy.deepcopy(value)
            for name, value in snap.items()
        }

    # -- news ------------------------------------------------------------------------------------

    def on_news(self, state: dict[str, Any], news: ScoredNews) -> list[events.Event]:
        """Fold one story into the sentiment features (``state`` is updated in place)."""
        sent = state.setdefault("sent", {"s": 0.0, "w": 0.0, "t": news.ts})
        half_life = self.settings.sentiment_half_life_ms
        if news.ts >= sent["t"]:
            decay = 0.5 ** ((news.ts - sent["t"]) / half_life)
            sent["s"], sent["w"], sent["t"] = sent["s"] * decay, sent["w"] * decay, news.ts
            weight = 1.0
        else:  # an older story arriving late counts with the weight it would have had
            weight = 0.5 ** ((sent["t"] - news.ts) / half_life)
        sent["s"] += weight * news.sentiment
        sent["w"] += weight
        if news.ts >= sent.get("last_ts", -1):
            sent["last"], sent["last_ts"] = news.sentiment, news.ts
        out: list[events.Event] = []
        threshold = self.settings.news_shock
        if self.settings.alerts and abs(news.sentiment) >= threshold:
            strong = abs(news.sentiment) >= min(1.0, threshold * 1.5)
            tone = "positive" if news.sentiment > 0 else "negative"
            out.append(
                Alert(
                    id=Alert.make_id(events.AlertKind.NEWS_SHOCK, news.symbol, news.ts),
                    kind=events.AlertKind.NEWS_SHOCK,
                    severity=Severity.CRITICAL if strong else Severity.WARNING,
                    symbol=news.symbol,
                    message=f"Strongly {tone} news: {news.headline[:200]}",
                    value=news.sentiment,
                    threshold=threshold if news.sentiment > 0 else -threshold,
                    ts=news.ts,
                )
            )
        return out

    def sentiment_at(self, state: Mapping[str, Any], ts: int) -> tuple[float | None, float | None]:
        """(latest score, decayed average) of the news up to ``ts``; None without recent news."""
        sent = state.get("sent")
        if not sent or sent["w"] <= 0 or ts - sent["t"] > self.settings.sentiment_window_ms:
            return None, None
        return sent.get("last"), sent["s"] / sent["w"]

    # -- bars ------------------------------------------------------------------------------------

    def on_bar(self, state: dict[str, Any], bar: ClosedBar) -> list[events.Event]:
        """Indicators, alerts and strategies for one closed bar (``state`` updated in place).

        Returns the ``AnalyticsBar`` first, then alerts, then signals. Raises ``ValueError``, with
        ``state`` unchanged, for a bar with a non-finite or non-positive price or a negative
        volume."""
        close = float(bar.close)
        indicators = self.engine.advance(
            state["ind"], float(bar.high), float(bar.low), close, float(bar.volume), bar.vwap
        )
        end_ts = bar.ts + bar.interval_ms
        last, average = self.sentiment_at(state, end_ts)
        indicators["sentiment"], indicators["sentiment_avg"] = last, average
        out: list[events.Event] = [_analytics_bar(bar, indicators)]
        previous: float | None = state.get("last_close_f")
        if previous is not None:
            log_return = math.log(close / previous)
            returns: list[float] = state["returns"]
            if self._alerts:
                out.extend(self._bar_alerts(state, bar, indicators, previous, log_return))
            returns.append(log_return)
            if len(returns) > self._jump_window:
                del returns[: -self._jump_window]
            if self._returns_sd is not None:
                state["returns_sd"] = indicators[self._returns_sd]
        elif self._alerts:
            out.extend(self._bar_alerts(state, bar, indicators, None, 0.0))
        state["last_close"] = bar.close
        state["last_close_f"] = close
        state["last_end"] = end_ts
        state.pop("stale_alerted", None)
        if self._runs:
            out.extend(self._strategies(state["strategies"], _bar_view(bar, indicators, average)))
        return out

    def _bar_alerts(
        self,
        state: dict[str, Any],
        bar: ClosedBar,
        indicators: Mapping[str, float | None],
        previous: float | None,
        log_return: float,
    ) -> list[Alert]:
        """The bar's alerts; ``previous`` is the last bar's close (None on the first bar) and
        ``log_return`` the log return from it."""
        s = self.settings
        alerts: list[Alert] = []
        if previous is not None:
            rough_gap = (float(bar.open) - previous) / previous * 100
            if abs(rough_gap) >= self._gap_near:  # near or past: decide exactly
                prev_close: Decimal = state["last_close"]
                gap = float((bar.open - prev_close) / prev_close * 100)
                if abs(gap) >= s.gap_pct:
                    alerts.append(
                        self._alert(
                            events.AlertKind.PRICE_GAP,
                            bar,
                            abs(gap) >= 2 * s.gap_pct,
                            f"Opened {gap:+.2f}% from the previous close {prev_close}",
                            gap,
                            s.gap_pct if gap > 0 else -s.gap_pct,
                        )
                    )
            returns: list[float] = state["returns"]
            if len(returns) >= self._jump_window:
                sd: float | None = state["returns_sd"]  # exact; the rule's own differs by ulps
                deviation = abs(log_return - sum(returns) / len(returns))  # the rule's mean
                if not sd or deviation >= self._jump_near * sd:
                    alerts.extend(self._price_jump(bar, returns, log_return))
        volume_z = indicators.get(self._volume_z)
        if volume_z is not None and volume_z >= self._spike_z:
            alerts.append(
                self._alert(
                    events.AlertKind.VOLUME_SPIKE,
                    bar,
                    volume_z >= 1.5 * s.volume_spike_z,
                    f"Volume {bar.volume:,} is {volume_z:.1f} standard deviations above the last "
                    f"{s.volume_spike_window} bars",
                    volume_z,
                    s.volume_spike_z,
                )
            )
        return alerts

    def _price_jump(self, bar: ClosedBar, returns: list[float], log_return: float) -> list[Alert]:
        """The price-jump rule's reference figure: the z-score of ``log_return`` against
        ``returns`` (mean and population sd, summed in order)."""
        s = self.settings
        n = len(returns)
        mean = sum(returns) / n
        std = math.sqrt(sum((r - mean) ** 2 for r in returns) / n)
        if std <= 0:
            return []
        z = (log_return - mean) / std
        if abs(z) < s.price_jump_z:
            return []
        return [
            self._alert(
                events.AlertKind.PRICE_JUMP,
                bar,
                abs(z) >= 1.5 * s.price_jump_z,
                f"Return {log_return * 100:+.2f}% is {z:+.1f} standard deviations "
                f"from the last {n} bars",
                z,
                s.price_jump_z if z > 0 else -s.price_jump_z,
            )
        ]

    @staticmethod
    def _alert(
        kind: events.AlertKind,
        bar: ClosedBar,
        critical: bool,
        message: Any,
        value: Any,
        threshold: Any,
    ) -> Alert:
        """``Alert(...)`` of a bar rule: assembled as validation would build it when every value
        is already of its declared type (the rules give floats, the bar a checked symbol and time),
        validated otherwise; ``tests/unit/test_analytics.py`` pins it to the validated model and
        its bytes. A live minute can raise an alert on most bars (volume spikes), and validation
        cost ~15 us of them each. The values are typed ``Any`` for the tests of their types
        below, which mypyc would fold away for a declared ``str`` or ``float``."""
        symbol: Any = bar.symbol
        ts: Any = bar.ts + bar.interval_ms
        severity = Severity.CRITICAL if critical else Severity.WARNING
        if not (
            type(value) is float
            and type(threshold) is float
            and type(symbol) is str
            and type(ts) is int
            and 0 <= ts <= events.MAX_TS_MS
            and type(message) is str
        ):
            return Alert(
                id=Alert.make_id(kind, symbol, ts),
                kind=kind,
                severity=severity,
                symbol=symbol,
                message=message,
                value=value,
                threshold=threshold,
                ts=ts,
            )
        return events.assembled(
            Alert,
            {
                "ts": ts,
                "ingest_ts": events.now_ms(),
                "id": Alert.make_id(kind, symbol, ts),
                "kind": str(kind),
                "severity": severity,
                "symbol": symbol,
                "message": message,
                "value": value,
                "threshold": threshold,
            },
            set(_ALERT_FIELDS_SET),
        )

    def _strategies(self, states: dict[str, Any], bar: BarView) -> list[events.Event]:
        out: list[events.Event] = []
        symbol = bar.symbol
        for key, strategy, symbols, wanted in self._runs:
            if symbols and symbol not in symbols:
                continue
            state = states.get(key)
            if state is None:
                state = strategy.initial_state()
            if state.get("disabled"):
                continue
            try:
                intents, new_state = strategy.on_bar(bar, state)
            except Exception as exc:  # a user strategy may raise anything: contain it
                log.exception("strategy %s failed on %s at %s; disabled", key, symbol, bar.ts)
                reason = f"{type(exc).__name__}: {exc}"[:500]
                states[key] = {"disabled": reason}
                out.append(
                    Alert(
                        id=Alert.make_id(
                            f"{events.AlertKind.STRATEGY_ERROR}:{key}", symbol, bar.end_ts
                        ),
                        kind=events.AlertKind.STRATEGY_ERROR,
                        severity=Severity.CRITICAL,
                        symbol=symbol,
                        message=f"Strategy {key} raised {reason}; disabled for {symbol}",
                        ts=bar.end_ts,
                    )
                )
                continue
            states[key] = new_state
            for intent in intents:
                out.append(
                    Signal(
                        id=Signal.make_id(key, symbol, bar.ts),
                        strategy=key,
                        symbol=symbol,
                        side=intent.side,
                        price=bar.close,
                        bar_ts=bar.ts,
                        ts=bar.end_ts,
                        strength=intent.strength,
                        reason=intent.reason,
                        indicators={k: bar.indicators.get(k) for k in wanted},
                        order=intent.order,
                    )
                )
        return out

    # -- time ------------------------------------------------------------------------------------

    def check_stale(self, state: dict[str, Any], symbol: str, now: int) -> list[events.Event]:
        """A ``stale_feed`` alert once when no bar has closed for too long at event time ``now``."""
        last_end = state.get("last_end")
        limit = self.settings.stale_after_ms
        if (
            not self.settings.alerts
            or last_end is None
            or state.get("stale_alerted")
            or now - last_end < limit
        ):
            return []
        state["stale_alerted"] = True
        ts = last_end + limit
        minutes = limit / 60_000
        return [
            Alert(
                id=Alert.make_id(events.AlertKind.STALE_FEED, symbol, ts),
                kind=events.AlertKind.STALE_FEED,
                severity=Severity.WARNING,
                symbol=symbol,
                message=f"No trades for {symbol} for {minutes:g} minutes of market time",
                value=float(now - last_end) / 60_000,
                threshold=minutes,
                ts=ts,
            )
        ]
