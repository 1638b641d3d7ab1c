"""The trades-1m work for the Python peers, written once and shared by every peer contender.

Pure functions over a per-symbol state that is a plain list (so Quix Streams can store it as JSON
and Bytewax can snapshot it): 1-minute OHLCV + VWAP bars aligned to UTC minutes, SMA20/SMA50 over
bar closes, a signal on each sign change of SMA20 - SMA50 once both exist, and (latency runs only)
a per-trade alert on large prints. A bar closes when the next trade of its symbol falls in a later
minute, or on the end-of-stream record (one per symbol, far-future timestamp).

SMAs are compared in integer cents (``sum20 * 50`` vs ``sum50 * 20``), so a crossover never
depends on float rounding. No flinktrade import: this runs in the peers' own venv.
"""

from __future__ import annotations

import time
from typing import Any

BAR_MS = 60_000
FAST, SLOW = 20, 50
ALERT_SIZE = 490
"""A trade of at least this size raises a per-trade alert (~2% of the simulator's trades)."""

# state: [start, open, high, low, close, volume, notional, trades, closes_cents, last_sign, trigger]
Output = tuple[str, dict[str, Any]]


def now_us() -> int:
    return time.time_ns() // 1000


def on_record(
    state: list[Any] | None, rec: dict[str, Any]
) -> tuple[list[Any] | None, list[Output]]:
    """Fold one decoded input record (a trade or the end-of-stream marker) into ``state``."""
    symbol = rec["symbol"]
    trigger = rec.get("sched_us")
    if rec.get("eos"):
        if state is None or state[0] is None:
            return state, []
        out = close_bar(symbol, state, trigger)
        state[0] = None
        return state, out
    ts, price, size = rec["ts"], rec["price"], rec["size"]
    start = ts - ts % BAR_MS
    out: list[Output] = []
    if state is None:
        state = [None, 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0, [], 0]
    if state[0] != start:
        if state[0] is not None:
            out = close_bar(symbol, state, trigger)
        state[0:8] = [start, price, price, price, price, size, price * size, 1]
    else:
        if price > state[2]:
            state[2] = price
        elif price < state[3]:
            state[3] = price
        state[4] = price
        state[5] += size
        state[6] += price * size
        state[7] += 1
    if trigger is not None and size >= ALERT_SIZE:
        alert = {
            "symbol": symbol,
            "ts": ts,
            "size": size,
            "price": price,
            "trigger_us": trigger,
            "ingest_ts": time.time_ns() // 1_000_000,
        }
        out.append(("alert", alert))
    return state, out


def close_bar(symbol: str, state: list[Any], trigger: int | None) -> list[Output]:
    """The bar in ``state`` as an output, plus a signal if SMA20 - SMA50 changed sign."""
    start, o, h, low, c, volume, notional, trades, closes, last_sign = state[:10]
    closes.append(round(c * 100))
    if len(closes) > SLOW:
        del closes[0]
    sum_fast = sum(closes[-FAST:]) if len(closes) >= FAST else None
    sum_slow = sum(closes) if len(closes) >= SLOW else None
    bar = {
        "symbol": symbol,
        "ts": start,
        "open": o,
        "high": h,
        "low": low,
        "close": c,
        "volume": volume,
        "vwap": notional / volume,
        "trades": trades,
        "sma_20": sum_fast / FAST / 100 if sum_fast is not None else None,
        "sma_50": sum_slow / SLOW / 100 if sum_slow is not None else None,
        "ingest_ts": time.time_ns() // 1_000_000,
    }
    if trigger is not None:
        bar["trigger_us"] = trigger
    out: list[Output] = [("bar", bar)]
    if sum_fast is not None and sum_slow is not None:
        diff = sum_fast * SLOW - sum_slow * FAST
        if diff:
            sign = 1 if diff > 0 else -1
            if last_sign and sign != last_sign:
                signal = {
                    "symbol": symbol,
                    "bar_ts": start,
                    "side": "buy" if sign > 0 else "sell",
                    "ingest_ts": bar["ingest_ts"],
                }
                if trigger is not None:
                    signal["trigger_us"] = trigger
                out.append(("signal", signal))
            state[9] = sign
    return out
