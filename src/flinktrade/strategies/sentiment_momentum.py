"""Momentum confirmed by news: buy on upward momentum only when the news sentiment agrees."""

from __future__ import annotations

from flinktrade.events import Side
from flinktrade.orders import with_exits
from flinktrade.strategies.base import BarView, Intent, State

SENTIMENT_COLUMN = "sentiment_avg"
"""The column carrying the sentiment a bar's ``BarView.sentiment`` holds (recorded in signals)."""
_BUY, _SELL = Side.BUY.value, Side.SELL.value


class SentimentMomentum:
    """Momentum (close above EMA, MACD histogram > 0) confirmed by news sentiment.

    Buys when momentum is up (close above EMA(period) and MACD histogram > 0) and the news
    sentiment is at least ``threshold``; sells when momentum turns down after a buy (close below
    the EMA or histogram < 0) or when the sentiment falls to ``-threshold`` or below.

    Strength is the sentiment's magnitude (1.0 for a momentum exit, which is news-independent). Without
    sentiment (no recent news) it never buys. A signal never repeats the previous one's side.
    """

    def __init__(
        self,
        period: int = 20,
        fast: int = 12,
        slow: int = 26,
        signal: int = 9,
        threshold: float = 0.3,
        name: str = "sentiment_momentum",
        take_profit_pct: float | None = None,
        stop_loss_pct: float | None = None,
        trail_pct: float | None = None,
    ) -> None:
        period, fast, slow, signal = int(period), int(fast), int(slow), int(signal)
        threshold = float(threshold)
        if period < 2:
            raise ValueError(f"sentiment_momentum needs period >= 2, got {period}")
        if not 2 <= fast < slow or signal < 1:
            raise ValueError(
                f"sentiment_momentum needs 2 <= fast < slow and signal >= 1, "
                f"got fast={fast} slow={slow} signal={signal}"
            )
        if not 0 < threshold <= 1:
            raise ValueError(f"sentiment_momentum needs 0 < threshold <= 1, got {threshold}")
        self.period, self.threshold, self.name = period, threshold, name
        self._ema = f"ema_{period}"
        self._hist = f"macd_hist_{fast}_{slow}_{signal}"
        self.order = with_exits(take_profit_pct, stop_loss_pct, trail_pct)

    def indicators(self) -> set[str]:
        return {self._ema, self._hist, SENTIMENT_COLUMN}

    def initial_state(self) -> State:
        return {"last": None}

    def on_bar(self, bar: BarView, state: State) -> tuple[list[Intent], State]:
        ema, hist = bar.indicators.get(self._ema), bar.indicators.get(self._hist)
        if ema is None or hist is None:
            return [], state
        close, sentiment, last = float(bar.close), bar.sentiment, state.get("last")
        if sentiment is not None and sentiment <= -self.threshold and last != _SELL:
            intent = Intent(
                Side.SELL,
                min(1.0, -sentiment),
                f"news sentiment {sentiment:+.2f} <= -{self.threshold:g}",
                self.order,
            )
        elif (close < ema or hist < 0) and last == _BUY:  # momentum down
            why = f"close below EMA{self.period}" if close < ema else "MACD histogram below 0"
            mood = "n/a" if sentiment is None else f"{sentiment:+.2f}"
            intent = Intent(
                Side.SELL, 1.0, f"momentum turned down: {why} (sentiment {mood})", self.order
            )
        elif (
            close > ema
            and hist > 0  # momentum up
            and sentiment is not None
            and sentiment >= self.threshold
            and last != _BUY
        ):
            intent = Intent(
                Side.BUY,
                min(1.0, sentiment),
                f"close above EMA{self.period}, MACD histogram > 0, sentiment {sentiment:+.2f}",
                self.order,
            )
        else:
            return [], state
        return [intent], {"last": intent.side.value}
