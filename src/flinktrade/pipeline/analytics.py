"""What the job does with one symbol's closed bars and news, as pure functions over JSON state.

``SymbolModel`` is the whole per-symbol logic of the job after the bars: indicators, the news
sentiment features, the anomaly rules and the strategies. It reads no clock and does no I/O; its
state is one JSON-compatible dict. The Flink operator (``operator.py``) keeps that dict in keyed
state and feeds it bars and scored news in event-time order; tests and the backtester can call it
directly and get the same answers.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from flinktrade import events
from flinktrade.config import AnalyticsSettings
from flinktrade.errors import ConfigError
from flinktrade.events import Alert, AnalyticsBar, Severity, Signal
from flinktrade.indicators import DEFAULT_INDICATORS, BarInput, IndicatorEngine
from flinktrade.strategies import BarView, Strategy, build

log = logging.getLogger(__name__)

BAR_INTERVAL_MS = 60_000
SENTIMENT_COLUMNS = ("sentiment", "sentiment_avg")
"""Indicator columns carrying news sentiment: the latest story's score and the decayed average."""


@dataclass(frozen=True)
class StrategySpec:
    """A picklable description of one configured strategy instance."""

    name: str
    params: Mapping[str, Any]
    symbols: frozenset[str] = frozenset()  # empty: all symbols

    def applies_to(self, symbol: str) -> bool:
        return not self.symbols or symbol in self.symbols


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


@dataclass(frozen=True)
class ClosedBar:
    """A 1-minute bar as the SQL part of the job hands it over; ``ts`` is the bar's start."""

    symbol: str
    ts: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: int
    vwap: float | None
    trades: int
    interval_ms: int = BAR_INTERVAL_MS

    @property
    def end_ts(self) -> int:
        return self.ts + self.interval_ms


@dataclass(frozen=True)
class ScoredNews:
    """One news story for one symbol, with the job's sentiment score."""

    id: str
    symbol: str
    ts: int
    sentiment: float
    headline: str


class SymbolModel:
    """Indicators, sentiment, alerts and strategies for one symbol at a time (state passed in)."""

    def __init__(self, specs: Sequence[StrategySpec], settings: AnalyticsSettings) -> None:
        self.settings = settings
        self.strategies = build_all(specs)
        wanted = set(DEFAULT_INDICATORS)
        wanted.add(f"volume_z_{settings.volume_spike_window}")
        for _spec, strategy in self.strategies:
            wanted |= {n for n in strategy.indicators() if n not in SENTIMENT_COLUMNS}
        self.engine = IndicatorEngine(wanted)

    def initial_state(self) -> dict[str, Any]:
        return {"ind": self.engine.initial_state(), "strategies": {}, "returns": []}

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
                    id=Alert.make_id("news_shock", news.symbol, news.ts),
                    kind="news_shock",
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

        Returns the ``AnalyticsBar`` first, then alerts, then signals."""
        values, state["ind"] = self.engine.update(
            state["ind"],
            BarInput(
                float(bar.open),
                float(bar.high),
                float(bar.low),
                float(bar.close),
                float(bar.volume),
                bar.vwap,
            ),
        )
        last, average = self.sentiment_at(state, bar.end_ts)
        indicators: dict[str, float | None] = dict(values)
        indicators["sentiment"], indicators["sentiment_avg"] = last, average
        out: list[events.Event] = [
            AnalyticsBar(
                symbol=bar.symbol,
                ts=bar.ts,
                open=bar.open,
                high=bar.high,
                low=bar.low,
                close=bar.close,
                volume=bar.volume,
                vwap=bar.vwap,
                trades=bar.trades,
                interval_ms=bar.interval_ms,
                indicators=indicators,
            )
        ]
        if self.settings.alerts:
            out.extend(self._bar_alerts(state, bar, indicators))
        state["last_close"] = str(bar.close)
        state["last_end"] = bar.end_ts
        state.pop("stale_alerted", None)
        view = BarView(
            symbol=bar.symbol,
            ts=bar.ts,
            end_ts=bar.end_ts,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            vwap=bar.vwap,
            indicators=indicators,
            sentiment=average,
        )
        out.extend(self._strategies(state["strategies"], view))
        return out

    def _bar_alerts(
        self, state: dict[str, Any], bar: ClosedBar, indicators: Mapping[str, float | None]
    ) -> list[Alert]:
        s = self.settings
        alerts: list[Alert] = []
        previous = state.get("last_close")
        if previous is not None:
            prev_close = Decimal(previous)
            gap = float((bar.open - prev_close) / prev_close * 100)
            if abs(gap) >= s.gap_pct:
                alerts.append(
                    self._alert(
                        "price_gap",
                        bar,
                        abs(gap) >= 2 * s.gap_pct,
                        f"Opened {gap:+.2f}% from the previous close {prev_close}",
                        gap,
                        s.gap_pct if gap > 0 else -s.gap_pct,
                    )
                )
            returns: list[float] = state["returns"]
            log_return = math.log(float(bar.close) / float(prev_close))
            if len(returns) >= s.price_jump_window:
                n = len(returns)
                mean = sum(returns) / n
                std = math.sqrt(sum((r - mean) ** 2 for r in returns) / n)
                if std > 0:
                    z = (log_return - mean) / std
                    if abs(z) >= s.price_jump_z:
                        alerts.append(
                            self._alert(
                                "price_jump",
                                bar,
                                abs(z) >= 1.5 * s.price_jump_z,
                                f"Return {log_return * 100:+.2f}% is {z:+.1f} standard deviations "
                                f"from the last {n} bars",
                                z,
                                s.price_jump_z if z > 0 else -s.price_jump_z,
                            )
                        )
            returns.append(log_return)
            del returns[: -s.price_jump_window]
        volume_z = indicators.get(f"volume_z_{s.volume_spike_window}")
        if volume_z is not None and volume_z >= s.volume_spike_z:
            alerts.append(
                self._alert(
                    "volume_spike",
                    bar,
                    volume_z >= 1.5 * s.volume_spike_z,
                    f"Volume {bar.volume:,} is {volume_z:.1f} standard deviations above the last "
                    f"{s.volume_spike_window} bars",
                    volume_z,
                    s.volume_spike_z,
                )
            )
        return alerts

    @staticmethod
    def _alert(
        kind: str,
        bar: ClosedBar,
        critical: bool,
        message: str,
        value: float,
        threshold: float,
    ) -> Alert:
        return Alert(
            id=Alert.make_id(kind, bar.symbol, bar.end_ts),
            kind=kind,
            severity=Severity.CRITICAL if critical else Severity.WARNING,
            symbol=bar.symbol,
            message=message,
            value=value,
            threshold=threshold,
            ts=bar.end_ts,
        )

    def _strategies(self, states: dict[str, Any], bar: BarView) -> list[events.Event]:
        out: list[events.Event] = []
        for spec, strategy in self.strategies:
            if not spec.applies_to(bar.symbol):
                continue
            key = strategy.name
            state = states.get(key)
            if state is None:
                state = strategy.initial_state()
            if state.get("disabled"):
                continue
            try:
                intents, new_state = strategy.on_bar(bar, state)
            except Exception as exc:  # a user strategy may raise anything: contain it
                log.exception("strategy %s failed on %s at %s; disabled", key, bar.symbol, bar.ts)
                reason = f"{type(exc).__name__}: {exc}"[:500]
                states[key] = {"disabled": reason}
                out.append(
                    Alert(
                        id=Alert.make_id(f"strategy_error:{key}", bar.symbol, bar.end_ts),
                        kind="strategy_error",
                        severity=Severity.CRITICAL,
                        symbol=bar.symbol,
                        message=f"Strategy {key} raised {reason}; disabled for {bar.symbol}",
                        ts=bar.end_ts,
                    )
                )
                continue
            states[key] = new_state
            wanted = sorted(strategy.indicators())
            for intent in intents:
                out.append(
                    Signal(
                        id=Signal.make_id(key, bar.symbol, bar.ts),
                        strategy=key,
                        symbol=bar.symbol,
                        side=intent.side,
                        price=bar.close,
                        bar_ts=bar.ts,
                        ts=bar.end_ts,
                        strength=intent.strength,
                        reason=intent.reason,
                        indicators={k: bar.indicators.get(k) for k in wanted},
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
                id=Alert.make_id("stale_feed", symbol, ts),
                kind="stale_feed",
                severity=Severity.WARNING,
                symbol=symbol,
                message=f"No trades for {symbol} for {minutes:g} minutes of market time",
                value=float(now - last_end) / 60_000,
                threshold=minutes,
                ts=ts,
            )
        ]
