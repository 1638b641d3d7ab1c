"""Intake: what a ``trading.signals`` record must be before the executor decides anything on it.

Pure: bytes in, a valid ``Signal`` or an ``Invalid`` with a one-line reason out. The executor sends
an invalid record to the dead-letter topic and goes on with the next one; nothing about it is
stored as an order. The bounds do not rely on ``events.Signal`` enforcing them (it may, or may not,
in a given version): a symbol the broker cannot take, a price that is not a positive finite number
of at most 6 decimals, or a time outside 1970..2100 (or a bar that starts after it closes) never reaches sizing, risk or the store.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal

from flinktrade import events
from flinktrade.events import Signal

MAX_SYMBOL_CHARS = 16
SYMBOL = re.compile(r"[A-Z0-9][A-Z0-9./-]{0,15}")
"""Upper-case letters and digits, with '.', '/' and '-' (BRK.B, BTC/USD); 1..16 characters."""
SIGNAL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
MAX_STRATEGY_CHARS = 64
MAX_PRICE = Decimal(1_000_000_000)
"""Tighter than the wire's ``events.MAX_PRICE``: no listed instrument trades above it."""
MIN_TS = 1
MAX_TS = events.MAX_TS_MS  # 2100-01-01 UTC
MAX_BAR_SPAN_MS = 31 * 24 * 3600 * 1000


@dataclass(frozen=True)
class Invalid:
    """A record the executor cannot use; ``reason`` is one line for the dead letter."""

    reason: str


def parse(raw: bytes) -> Signal | Invalid:
    """Decode and validate one record."""
    try:
        signal = events.decode(Signal, raw)
    except events.DecodeError as exc:
        return Invalid(f"undecodable signal: {exc}")
    except (ValueError, RecursionError, ArithmeticError) as exc:  # defence in depth
        return Invalid(f"undecodable signal: {type(exc).__name__}")
    problem = check(signal)
    return signal if problem is None else Invalid(problem)


def check(signal: Signal) -> str | None:
    """Why ``signal`` cannot be traded, or None when it is well-formed."""
    if not SIGNAL_ID.fullmatch(signal.id):
        return "id must be 1..64 letters, digits, '_' or '-'"
    if not 1 <= len(signal.strategy) <= MAX_STRATEGY_CHARS or not signal.strategy.isprintable():
        return f"strategy must be 1..{MAX_STRATEGY_CHARS} printable characters"
    if not SYMBOL.fullmatch(signal.symbol):
        return (
            f"symbol {_show(signal.symbol)} must be 1..{MAX_SYMBOL_CHARS} upper-case letters, "
            "digits, '.', '/' or '-'"
        )
    bad_price = price_problem(signal.price)
    if bad_price is not None:
        return bad_price[:200]
    for name in ("ts", "bar_ts", "ingest_ts"):
        value = getattr(signal, name)
        if not MIN_TS <= value < MAX_TS:
            return f"{name} {_show(str(value))} is not a time between 1970 and 2100 (epoch ms)"
    if not 0 <= signal.ts - signal.bar_ts <= MAX_BAR_SPAN_MS:
        return (
            f"bar_ts {signal.bar_ts} must be at most 31 days before ts {signal.ts} "
            "(the bar's start, then its close)"
        )
    if not math.isfinite(signal.strength):
        return "strength must be a finite number"
    return None


def price_problem(price: Decimal) -> str | None:
    """Why ``price`` is not a usable price, or None: the wire's rule (``events.price_problem``)
    with the executor's tighter ceiling."""
    problem = events.price_problem(price)
    if problem is None and price > MAX_PRICE:
        problem = f"price {price} is above {MAX_PRICE}"
    return problem


def _show(text: str, limit: int = 24) -> str:
    """A bounded, printable rendering of a bad value for a reason line."""
    shown = text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"
    return repr(shown)
