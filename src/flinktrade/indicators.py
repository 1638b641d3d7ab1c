"""Incremental technical indicators over one symbol's closed bars.

An ``IndicatorEngine(names)`` computes a fixed set of indicators bar by bar, in two forms:

- ``start()`` and ``advance(state, high, low, close, volume, vwap)``: the state is a live object
  that ``advance`` updates in place; it returns every indicator's value at that bar (``None``
  while it warms up). This is the hot path: ``SymbolModel`` (the Flink operator, the backtester)
  runs it. With the C kernel built (``make setup``) the state is a ``FlatState`` (every number
  of the symbol's state in one block of C memory, advanced in C with the calculators' very
  operations); without it, an ``IndicatorState`` (plain floats and ints in ``__slots__``
  objects, the calculators below). Both pickle, copy and snapshot alike.
  ``snapshot(state)`` gives it as one tuple of plain values, cheap to pickle (the job writes it
  to Flink state per bar), and ``restore(snapshot)`` makes an identical live state of it.
- ``initial_state()`` and ``update(state, bar)``: the same computation over a plain JSON document
  (dicts, lists, floats, ints); ``update`` never mutates the state it is given and returns the new
  one. ``to_json``/``from_json`` convert between the two forms, and a ``json.dumps``/``json.loads``
  round trip changes no later value.

Memory is O(largest window) per symbol; every bar costs O(1) per indicator.

Parity with TA-Lib: the values agree with TA-Lib's on the same input to rounding (tested to 1e-9
absolute), warm-up included: the first bar with a value is TA-Lib's first non-NaN index. Moving
averages reproduce TA-Lib's arithmetic exactly (its running totals, kept in the state, its seeds
and its order of operations). Standard deviations and VWAP's sums come from exact rolling sums:
each value enters the window as an integer scaled by a power of two (a float is one exactly), so
the window's sum and sum of squares are exact and the variance ``(n*S2 - S1**2) / n**2`` is rounded
once: as accurate as TA-Lib's own stable rolling variance, exactly 0 on a flat window, and O(1) per
bar instead of a two-pass sum over the window.

Names (``N``, ``F``, ``S``, ``G`` are integers without leading zeros; ``K`` is a positive number
written with ``_`` for the decimal point, e.g. ``2`` or ``2_5`` for 2.5, without trailing zeros)::

    sma_N                       simple moving average of close                  talib.SMA
    ema_N                       exponential moving average, seeded with SMA(N)  talib.EMA
    rsi_N                       Wilder's relative strength index                talib.RSI
    bb_upper_N_K                Bollinger upper band: SMA(N) + K population sd  talib.BBANDS
    bb_middle_N_K               Bollinger middle band: SMA(N)                   (matype=0)
    bb_lower_N_K                Bollinger lower band: SMA(N) - K population sd
    macd_F_S_G                  MACD line EMA(F) - EMA(S), F < S                talib.MACD
    macd_signal_F_S_G           EMA(G) of the MACD line
    macd_hist_F_S_G             MACD line - signal (all three from bar S+G-2, as TA-Lib;
                                the fast EMA is seeded on the F closes ending at bar S-1)
    atr_N                       Wilder's average true range                     talib.ATR
    vwap_N                      sum(price * volume) / sum(volume) over N bars, price = the bar's
                                VWAP (its close when it has none); None while the volume is 0
    volatility_N                population sd of the last N log returns of close  talib.STDDEV
    volume_z_N                  (volume - mean) / population sd of the N bars before this one;
                                None while that sd is 0

with ``N >= 2`` (``atr_N`` and ``vwap_N``: ``N >= 1``), ``2 <= F < S``, ``G >= 1``, all at most
10000.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import math
import operator
import re
import sys
from array import array
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, NamedTuple, Protocol

from flinktrade.errors import ConfigError

__all__ = [
    "DEFAULT_INDICATORS",
    "GRAMMAR",
    "BarInput",
    "ExactWindow",
    "IndicatorEngine",
    "IndicatorState",
    "pack",
    "unpack",
]

DEFAULT_INDICATORS: tuple[str, ...] = (
    "sma_20",
    "sma_50",
    "ema_12",
    "ema_26",
    "rsi_14",
    "bb_upper_20_2",
    "bb_middle_20_2",
    "bb_lower_20_2",
    "macd_12_26_9",
    "macd_signal_12_26_9",
    "macd_hist_12_26_9",
    "atr_14",
    "vwap_20",
    "volatility_20",
    "volume_z_20",
)
"""Computed for every symbol whatever the strategies ask for (dashboard and alerts read them)."""

GRAMMAR = (
    "sma_N, ema_N, rsi_N, atr_N, vwap_N, volatility_N, volume_z_N, "
    "bb_upper_N_K, bb_middle_N_K, bb_lower_N_K, macd_F_S_G, macd_signal_F_S_G, macd_hist_F_S_G "
    "(integers without leading zeros; N >= 2, atr/vwap N >= 1; 2 <= F < S; G >= 1; all <= 10000; "
    "K > 0 with '_' as the decimal point, e.g. bb_upper_20_2 or bb_lower_20_2_5 for K = 2.5)"
)

MAX_PERIOD = 10_000

_INT = r"[1-9][0-9]*"
_SIMPLE_RE = re.compile(rf"(sma|ema|rsi|atr|vwap|volatility|volume_z)_({_INT})")
_BB_RE = re.compile(rf"bb_(upper|middle|lower)_({_INT})_((?:0|{_INT})(?:_[0-9]*[1-9])?)")
_MACD_RE = re.compile(rf"macd(?:_(signal|hist))?_({_INT})_({_INT})_({_INT})")
_INF = math.inf

_CSums: Any
_FlatEngine: Any
_FlatState: Any
try:  # the C kernel of the exact windows (flinktrade/_exact.c), when built and current
    _exact = importlib.import_module("flinktrade._exact")
    _CSums, _C_MAX_N = _exact.Sums, int(_exact.MAX_N)
    _FlatEngine, _FlatState = _exact.FlatEngine, _exact.FlatState
except ImportError:
    _CSums, _C_MAX_N, _FlatEngine, _FlatState = None, 0, None, None

Values = dict[str, float | None]

_BIG_ENDIAN = sys.byteorder == "big"


def pack(xs: Iterable[float]) -> bytes:
    """Floats as one ``bytes``: IEEE 754 binary64 each, little-endian, in order. The form of a
    snapshot's windows and closes: a pickle writes it as one string, where a tuple of floats
    costs a step per float. The C kernel keeps a window's floats, and the flat state its closes,
    as C doubles, so their snapshot copies bytes and touches no Python float at all. (Packing
    Python floats costs about what pickling them does: the Python calculators' snapshot packs
    its closes to give the flat state's form.)"""
    packed = array("d", xs)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tobytes()


def unpack(data: bytes) -> list[float]:
    """``pack``'s floats (``ValueError`` for bytes that are not whole floats)."""
    if type(data) is not bytes or len(data) % 8:
        raise ValueError("not packed floats")
    packed = array("d")
    packed.frombytes(data)
    if _BIG_ENDIAN:
        packed.byteswap()
    return packed.tolist()


class BarInput(NamedTuple):
    """The numbers of one closed bar the indicators read (prices positive, volume >= 0)."""

    open: float
    high: float
    low: float
    close: float
    volume: float
    vwap: float | None


_divide: Callable[[int, int], float] = operator.truediv
"""``a / b`` of two integers, correctly rounded as Python divides them. Called through the
operator so that mypyc does not compile it: its own int / int converts both to floats first when
they fit a machine word, which rounds twice (off by an ulp for integers above 2**53)."""


class _Kernel(Protocol):
    """What ``ExactWindow`` asks of its kernel (``_PySums``, or the C ``flinktrade._exact.Sums``)."""

    n: int
    shift: int
    s1: int
    s2: int

    @property
    def values(self) -> list[int]: ...

    @property
    def xs(self) -> list[float]: ...

    def push(self, x: float) -> bool: ...

    def rebuild(self, shift: int, xs: list[float]) -> bool: ...

    def __len__(self) -> int: ...

    def total(self) -> float: ...

    def mean(self) -> float: ...

    def variance(self) -> float: ...

    def snap(self) -> tuple[Any, ...]: ...


class _PySums:
    """The exact sums of a window in Python integers: the reference the C kernel
    (``flinktrade._exact.Sums``, the same interface) reproduces bit for bit, and what runs when
    the C kernel is not built or a value does not fit its fixed width.

    Each value is kept as the integer ``value * 2**shift`` (every finite float is one, for a large
    enough ``shift``; ``shift`` grows when a value needs it), so the sums are Python integers with
    no rounding at all, and a value leaving the window subtracts exactly what it added."""

    __slots__ = ("n", "s1", "s2", "shift", "squares", "values", "xs")

    def __init__(self, n: int, squares: bool) -> None:
        self.n = n
        self.squares = squares
        self.shift = 0
        self.values: list[int] = []
        self.xs: list[float] = []
        self.s1 = self.s2 = 0

    def push(self, x: float) -> bool:
        num, den = x.as_integer_ratio()
        exp = den.bit_length() - 1  # den is 2**exp
        if exp > self.shift:
            self._rescale(exp)
        v = num << (self.shift - exp)
        values, xs = self.values, self.xs
        values.append(v)
        xs.append(x)
        if self.squares:
            if len(values) > self.n:
                old = values.pop(0)
                del xs[0]
                self.s1 += v - old
                self.s2 += v * v - old * old
            else:
                self.s1 += v
                self.s2 += v * v
        elif len(values) > self.n:
            self.s1 += v - values.pop(0)
            del xs[0]
        else:
            self.s1 += v
        return True

    def _rescale(self, shift: int) -> None:
        more = shift - self.shift
        self.values = [v << more for v in self.values]
        self.s1 <<= more
        self.s2 <<= 2 * more
        self.shift = shift

    def rebuild(self, shift: int, xs: list[float]) -> bool:
        """The integers and sums of the floats ``xs`` at ``shift`` (at least every one's own)."""
        values = []
        for x in xs:
            num, den = x.as_integer_ratio()
            exp = den.bit_length() - 1
            if exp > shift:
                raise ValueError(f"window value {x!r} needs a shift above {shift}")
            values.append(num << (shift - exp))
        self.shift, self.xs, self.values = shift, xs, values
        self.s1 = sum(values)
        self.s2 = sum([v * v for v in values]) if self.squares else 0
        return True

    def __len__(self) -> int:
        return len(self.values)

    def total(self) -> float:
        return _divide(self.s1, 1 << self.shift)

    def mean(self) -> float:
        return _divide(self.s1, len(self.values) << self.shift)

    def variance(self) -> float:
        if not self.squares:
            raise TypeError("a window of sums only has no variance")
        n = len(self.values)
        return _divide(n * self.s2 - self.s1 * self.s1, (n * n) << (2 * self.shift))

    def snap(self) -> tuple[Any, ...]:
        return (self.shift, pack(self.xs))


def _sums(n: int, squares: bool) -> _Kernel:
    """A window's kernel: the C one when it is built and current and takes ``n``, else Python."""
    if _CSums is not None and 1 <= n <= _C_MAX_N:
        return _CSums(n, squares)  # type: ignore[no-any-return]
    return _PySums(n, squares)


class ExactWindow:
    """Exact sum and sum of squares of the last ``n`` floats pushed, O(1) per value.

    Each value is kept as the integer ``value * 2**shift`` (every finite float is one, for a large
    enough ``shift``; ``shift`` grows when a value needs it), so the sums carry no rounding at all,
    and a value leaving the window subtracts exactly what it added; ``total``, ``mean`` and
    ``variance`` divide them and round once. The work is a kernel's: the C one
    (``flinktrade._exact``, fixed-width integers: a push is a few machine instructions) when it is
    built, else ``_PySums`` (Python integers); a value too wide for the C kernel moves the window
    to the Python one, exactly, and both give the same floats. The floats themselves are kept too
    (``xs``): a snapshot (``snap``) holds them and the shift, not the integers, which pickle at
    several times the cost of a float (the job writes a snapshot per bar), and ``unsnap``
    recomputes the integers and sums from them, exactly. Pickles hold ``_fields`` as before."""

    __slots__ = ("k",)
    _squares: ClassVar[bool] = True

    def __init__(self, n: int = 1) -> None:
        self.k: _Kernel = _sums(n, self._squares)

    def push(self, x: float) -> None:
        if not self.k.push(x):  # too wide for the C kernel (state unchanged): go on in Python
            self._widen()
            self.k.push(x)

    def _widen(self) -> None:
        k = self.k
        wide = _PySums(k.n, self._squares)
        wide.rebuild(k.shift, k.xs)
        self.k = wide

    def _rebuild(self, n: int, shift: int, xs: list[float]) -> None:
        """The window of the floats ``xs`` at ``shift`` (at least every one's own)."""
        k = _sums(n, self._squares)
        if not k.rebuild(shift, xs):
            k = _PySums(n, self._squares)
            k.rebuild(shift, xs)
        self.k = k

    @property
    def n(self) -> int:
        return self.k.n

    @property
    def shift(self) -> int:
        return self.k.shift

    @property
    def values(self) -> list[int]:
        return self.k.values

    @property
    def xs(self) -> list[float]:
        return self.k.xs

    @property
    def s1(self) -> int:
        return self.k.s1

    @property
    def s2(self) -> int:
        return self.k.s2

    def __len__(self) -> int:
        return len(self.k)

    def __getstate__(self) -> dict[str, Any]:
        k = self.k
        return {
            "n": k.n, "s1": k.s1, "s2": k.s2, "shift": k.shift, "values": k.values, "xs": k.xs,
        }  # fmt: skip

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (None, slots): pickled before __getstate__
            state = state[1]
        xs = state.get("xs")
        if xs is None:  # pickled before the floats were kept; exact: each was a float
            xs = _floats(state["values"], state["shift"])
        self._rebuild(state["n"], state["shift"], list(xs))

    def total(self) -> float:
        """The sum of the window, correctly rounded (what ``math.fsum`` gives)."""
        return self.k.total()

    def mean(self) -> float:
        return self.k.mean()

    def variance(self) -> float:
        """Population variance of the window (not empty), correctly rounded; exactly 0 if flat."""
        return self.k.variance()

    def to_json(self) -> dict[str, Any]:
        k = self.k
        return {"shift": k.shift, "values": list(k.values), "s1": k.s1, "s2": k.s2}

    def snap(self) -> tuple[Any, ...]:
        """The window as plain values, ``(shift, pack(floats))``; shares nothing. ``unsnap`` reads
        it back, and the forms written before: ``(shift, tuple of floats)`` and, before the floats
        were kept, ``(shift, integers, s1, s2)``."""
        return self.k.snap()

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        if len(snap) == 4:  # (shift, integers, s1, s2): written before the floats were kept
            shift, values, _s1, _s2 = snap
            self._rebuild(self.k.n, shift, _floats(list(values), shift))
            return
        shift, packed = snap
        # Any, not list[float]: compiled, an item typed float would be an int made float, unchecked
        xs: list[Any] = unpack(packed) if type(packed) is bytes else list(packed)
        finite = all(type(x) is float and -_INF < x < _INF for x in xs)
        if type(shift) is not int or shift < 0 or not finite:
            raise ValueError("not a window snapshot")
        self._rebuild(self.k.n, shift, xs)

    def load(self, doc: dict[str, Any]) -> None:
        self._rebuild(self.k.n, doc["shift"], _floats(list(doc["values"]), doc["shift"]))


def _floats(values: list[int], shift: int) -> list[float]:
    """The floats a window's integers at ``shift`` stand for: exact, since each was a float."""
    return [v / (1 << shift) for v in values]


class ExactSum(ExactWindow):
    """``ExactWindow`` without the sum of squares (``variance`` is not available)."""

    __slots__ = ()
    _squares: ClassVar[bool] = False


class IndicatorState:
    """One symbol's indicator state, live: ``IndicatorEngine.advance`` updates it in place.

    ``close`` .. ``log_return`` hold the bar being processed while the calculators run."""

    __slots__ = (
        "calcs",
        "close",
        "close_window",
        "closes",
        "engine",
        "high",
        "i",
        "log_return",
        "low",
        "prev_close",
        "price",
        "volume",
    )

    _fields: ClassVar[tuple[str, ...]] = (
        "calcs",
        "close",
        "close_window",
        "closes",
        "engine",
        "high",
        "i",
        "log_return",
        "low",
        "prev_close",
        "price",
        "volume",
    )

    def __init__(
        self, engine: str = "", calcs: list[_Calc] | None = None, close_window: int = 0
    ) -> None:
        self.engine = engine  # which indicator set the accumulators are for
        self.calcs: list[_Calc] = [] if calcs is None else calcs
        self.close_window = close_window
        self.i = 0  # index of the next bar since the state began
        self.prev_close: float | None = None
        self.closes: list[float] = []  # the last ``close_window`` closes
        self.close = self.high = self.low = self.volume = self.price = 0.0
        self.log_return: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    def __setstate__(self, state: Any) -> None:
        _restore(self, state)


def _restore(obj: Any, state: Any) -> None:
    """``__setstate__`` of the state classes: their attributes from ``__getstate__``'s dict (or
    from the ``(None, slots)`` pair a pickle made before they had ``__getstate__``)."""
    if isinstance(state, tuple):
        state = state[1]
    for name, value in state.items():
        setattr(obj, name, value)


class _Calc:
    """One computation with its own accumulators (one per symbol); it may serve several names."""

    __slots__ = ("key",)
    key: str
    state: ClassVar[tuple[str, ...]] = ()  # the slots that change from bar to bar
    _fields: ClassVar[tuple[str, ...]] = ("key",)  # every slot, this class's and its bases'

    def __getstate__(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._fields}

    def __setstate__(self, state: Any) -> None:
        _restore(self, state)

    def step(self, s: IndicatorState, out: Values) -> None:
        """Advance by one bar (``s`` holds it) and write this bar's defined values into ``out``."""
        raise NotImplementedError

    def snap(self) -> tuple[Any, ...]:
        """The slots that change from bar to bar (``state``), as plain values in a tuple."""
        raise NotImplementedError

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        """Set the slots ``snap`` gives (``ValueError`` if it is not this class's)."""
        raise NotImplementedError

    def to_json(self) -> dict[str, Any]:
        doc = {}
        for name in self.state:
            value = getattr(self, name)
            doc[name] = value.to_json() if isinstance(value, ExactWindow) else value
        return doc

    def load(self, doc: dict[str, Any]) -> None:
        for name in self.state:
            value = getattr(self, name)
            if isinstance(value, ExactWindow):
                value.load(doc[name])
            else:
                setattr(self, name, doc[name])


class _Sma(_Calc):
    __slots__ = ("n", "t")
    _fields = ("key", "n", "t")
    state = ("t",)

    def snap(self) -> tuple[Any, ...]:
        return (self.t,)

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        (self.t,) = snap

    def __init__(self, n: int = 2) -> None:
        self.n, self.key, self.t = n, f"sma_{n}", 0.0

    def step(self, s: IndicatorState, out: Values) -> None:
        total, n = self.t + s.close, self.n
        if s.i < n - 1:
            self.t = total
            return
        self.t = total - s.closes[-n]  # TA-Lib's running total
        out[self.key] = total / n


class _Ema(_Calc):
    """TA-Lib's EMA: the plain sum of the first ``n`` inputs / ``n``, then ``(x - e) * k + e``."""

    __slots__ = ("e", "k", "n", "t")
    _fields = ("key", "e", "k", "n", "t")
    state = ("t", "e")

    def snap(self) -> tuple[Any, ...]:
        return (self.t, self.e)

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        (self.t, self.e) = snap

    def __init__(self, n: int = 2) -> None:
        self.n, self.key, self.k = n, f"ema_{n}", 2.0 / (n + 1)
        self.t = self.e = 0.0

    def step(self, s: IndicatorState, out: Values) -> None:
        i, n = s.i, self.n
        if i < n - 1:
            self.t += s.close
            return
        if i == n - 1:
            self.t += s.close
            self.e = self.t / n
        else:
            self.e = (s.close - self.e) * self.k + self.e
        out[self.key] = self.e


class _Rsi(_Calc):
    __slots__ = ("g", "l", "n")
    _fields = ("key", "g", "l", "n")
    state = ("g", "l")

    def snap(self) -> tuple[Any, ...]:
        return (self.g, self.l)

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        (self.g, self.l) = snap

    def __init__(self, n: int = 2) -> None:
        self.n, self.key, self.g, self.l = n, f"rsi_{n}", 0.0, 0.0

    def step(self, s: IndicatorState, out: Values) -> None:
        previous = s.prev_close
        if previous is None:
            return
        n, i, diff = self.n, s.i, s.close - previous
        gain, loss = self.g, self.l
        if i > n:  # Wilder smoothing, in TA-Lib's order of operations
            gain *= n - 1
            loss *= n - 1
        if diff < 0:
            loss -= diff
        else:
            gain += diff
        if i >= n:
            gain /= n
            loss /= n
            total = gain + loss
            out[self.key] = 100.0 * (gain / total) if total != 0.0 else 0.0  # flat: 0, as TA-Lib
        self.g, self.l = gain, loss


class _Bollinger(_Calc):
    __slots__ = ("bands", "n", "t", "w")
    _fields = ("key", "bands", "n", "t", "w")
    state = ("t", "w")

    def snap(self) -> tuple[Any, ...]:
        return (self.t, self.w.snap())

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        t, w = snap
        self.t = t
        self.w.unsnap(w)

    def __init__(self, n: int = 2) -> None:
        self.n, self.key, self.t = n, f"bb_{n}", 0.0
        self.w = ExactWindow(n)
        self.bands: list[tuple[str, int, float]] = []  # (name, -1 lower | 0 middle | 1 upper, k)

    def step(self, s: IndicatorState, out: Values) -> None:
        close, n = s.close, self.n
        total = self.t + close  # the middle band is TA-Lib's SMA, running total and all
        self.w.push(close)
        if s.i < n - 1:
            self.t = total
            return
        self.t = total - s.closes[-n]
        middle = total / n
        sd = math.sqrt(self.w.variance())
        for name, band, k in self.bands:
            out[name] = middle if band == 0 else middle + sd * k if band > 0 else middle - sd * k


class _Macd(_Calc):
    __slots__ = ("f", "fast", "fk", "fs", "lines", "m", "mk", "ms", "sig", "sk", "slow", "ss", "sv")
    _fields = (
        "key",
        "f",
        "fast",
        "fk",
        "fs",
        "lines",
        "m",
        "mk",
        "ms",
        "sig",
        "sk",
        "slow",
        "ss",
        "sv",
    )
    state = ("fs", "f", "ss", "sv", "ms", "m")

    def snap(self) -> tuple[Any, ...]:
        return (self.fs, self.f, self.ss, self.sv, self.ms, self.m)

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        (self.fs, self.f, self.ss, self.sv, self.ms, self.m) = snap

    def __init__(self, fast: int = 2, slow: int = 3, signal: int = 1) -> None:
        self.fast, self.slow, self.sig = fast, slow, signal
        self.fk, self.sk, self.mk = 2.0 / (fast + 1), 2.0 / (slow + 1), 2.0 / (signal + 1)
        self.key = f"macd_{fast}_{slow}_{signal}"
        self.lines: list[tuple[str, str]] = []  # (name, "macd" | "signal" | "hist")
        self.fs = self.f = self.ss = self.sv = self.ms = self.m = 0.0

    def step(self, s: IndicatorState, out: Values) -> None:
        x, i, fast, slow = s.close, s.i, self.fast, self.slow
        # each EMA as TA-Lib: the sum of its first n inputs / n, then (x - e) * k + e
        if i < slow - 1:
            self.ss += x
        elif i == slow - 1:
            self.ss += x
            self.sv = self.ss / slow
        else:
            self.sv = (x - self.sv) * self.sk + self.sv
        # TA-Lib seeds the fast EMA on the `fast` closes that end where the slow EMA starts.
        j = i - (slow - fast)
        if j < 0:
            return
        if j < fast - 1:
            self.fs += x
        elif j == fast - 1:
            self.fs += x
            self.f = self.fs / fast
        else:
            self.f = (x - self.f) * self.fk + self.f
        if i < slow - 1:
            return
        line, j, g = self.f - self.sv, i - (slow - 1), self.sig
        if j < g - 1:
            self.ms += line
            return
        if j == g - 1:
            self.ms += line
            self.m = self.ms / g
        else:
            self.m = (line - self.m) * self.mk + self.m
        signal = self.m
        for name, kind in self.lines:
            out[name] = line if kind == "macd" else signal if kind == "signal" else line - signal


class _Atr(_Calc):
    __slots__ = ("a", "n", "t")
    _fields = ("key", "a", "n", "t")
    state = ("t", "a")

    def snap(self) -> tuple[Any, ...]:
        return (self.t, self.a)

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        (self.t, self.a) = snap

    def __init__(self, n: int = 1) -> None:
        self.n, self.key, self.t, self.a = n, f"atr_{n}", 0.0, 0.0

    def step(self, s: IndicatorState, out: Values) -> None:
        previous = s.prev_close
        if previous is None:
            return
        high, low = s.high, s.low
        true_range = high - low  # TA-Lib's TRANGE, in its order
        other = abs(previous - high)
        true_range = max(true_range, other)
        other = abs(previous - low)
        true_range = max(true_range, other)
        n, i = self.n, s.i
        if i < n:
            self.t += true_range
            return
        if i == n:
            atr = (self.t + true_range) / n
        else:
            atr = self.a * (n - 1)
            atr += true_range
            atr /= n
        self.a = atr
        out[self.key] = atr


class _Vwap(_Calc):
    __slots__ = ("n", "pvs", "volumes")
    _fields = ("key", "n", "pvs", "volumes")
    state = ("volumes", "pvs")

    def snap(self) -> tuple[Any, ...]:
        return (self.volumes.snap(), self.pvs.snap())

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        volumes, pvs = snap
        self.volumes.unsnap(volumes)
        self.pvs.unsnap(pvs)

    def __init__(self, n: int = 1) -> None:
        self.n, self.key = n, f"vwap_{n}"
        self.volumes, self.pvs = ExactSum(n), ExactSum(n)

    def step(self, s: IndicatorState, out: Values) -> None:
        volumes = self.volumes
        volumes.push(s.volume)
        self.pvs.push(s.price * s.volume)
        if s.i < self.n - 1:
            return
        volume = volumes.total()  # exactly rounded sums, as math.fsum
        if volume > 0:
            out[self.key] = self.pvs.total() / volume


class _Volatility(_Calc):
    __slots__ = ("n", "w")
    _fields = ("key", "n", "w")
    state = ("w",)

    def snap(self) -> tuple[Any, ...]:
        return (self.w.snap(),)

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        (w,) = snap
        self.w.unsnap(w)

    def __init__(self, n: int = 2) -> None:
        self.n, self.key, self.w = n, f"volatility_{n}", ExactWindow(n)

    def step(self, s: IndicatorState, out: Values) -> None:
        log_return = s.log_return
        if log_return is None:
            return
        self.w.push(log_return)  # the last n log returns (one fewer than the bars)
        if s.i >= self.n:
            out[self.key] = math.sqrt(self.w.variance())


class _VolumeZ(_Calc):
    __slots__ = ("n", "w")
    _fields = ("key", "n", "w")
    state = ("w",)

    def snap(self) -> tuple[Any, ...]:
        return (self.w.snap(),)

    def unsnap(self, snap: tuple[Any, ...]) -> None:
        (w,) = snap
        self.w.unsnap(w)

    def __init__(self, n: int = 2) -> None:
        self.n, self.key, self.w = n, f"volume_z_{n}", ExactWindow(n)

    def step(self, s: IndicatorState, out: Values) -> None:
        w = self.w  # the n volumes before this bar
        if s.i >= self.n:
            variance = w.variance()
            if variance > 0:
                out[self.key] = (s.volume - w.mean()) / math.sqrt(variance)
        w.push(s.volume)


def _bad(name: object, why: str) -> ConfigError:
    return ConfigError(f"indicator {name!r}: {why}; names are: {GRAMMAR}")


def _period(text: str, low: int, name: str) -> int:
    value = int(text)
    if not low <= value <= MAX_PERIOD:
        raise _bad(name, f"period {value} is outside [{low}, {MAX_PERIOD}]")
    return value


_BANDS = {"lower": -1, "middle": 0, "upper": 1}


def _parse(names: Iterable[str]) -> tuple[tuple[str, ...], list[_Calc]]:
    calcs: dict[str, _Calc] = {}
    given = list(names)
    for name in given:
        if not isinstance(name, str):
            raise _bad(name, "not a string")
    unique = sorted(set(given))
    for name in unique:
        if match := _SIMPLE_RE.fullmatch(name):
            kind, text = match.groups()
            n = _period(text, 1 if kind in ("atr", "vwap") else 2, name)
            factory: type[_Calc] = {
                "sma": _Sma,
                "ema": _Ema,
                "rsi": _Rsi,
                "atr": _Atr,
                "vwap": _Vwap,
                "volatility": _Volatility,
                "volume_z": _VolumeZ,
            }[kind]
            calcs.setdefault(f"{kind}_{n}", factory(n))  # type: ignore[call-arg]
        elif match := _BB_RE.fullmatch(name):
            band, text, k_text = match.groups()
            n = _period(text, 2, name)
            k = float(k_text.replace("_", "."))
            if not 0 < k <= 100:
                raise _bad(name, "K must be in (0, 100]")
            bb = calcs.setdefault(f"bb_{n}", _Bollinger(n))
            assert isinstance(bb, _Bollinger)
            bb.bands.append((name, _BANDS[band], k))
        elif match := _MACD_RE.fullmatch(name):
            line, f_text, s_text, g_text = match.groups()
            fast, slow = _period(f_text, 2, name), _period(s_text, 2, name)
            signal = _period(g_text, 1, name)
            if fast >= slow:
                raise _bad(name, "the fast period must be below the slow one")
            macd = calcs.setdefault(f"macd_{fast}_{slow}_{signal}", _Macd(fast, slow, signal))
            assert isinstance(macd, _Macd)
            macd.lines.append((name, line or "macd"))
        else:
            raise _bad(name, "unknown indicator")
    return tuple(unique), [calcs[key] for key in sorted(calcs)]


def _finite(value: float, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"bar {what} is not a finite number: {value!r}")
    return number


def _checked(bar: BarInput) -> tuple[float, float, float, float, float | None]:
    """(high, low, close, volume, vwap) as floats; ``ValueError`` for a bar no indicator takes."""
    close = _finite(bar.close, "close")
    high, low = _finite(bar.high, "high"), _finite(bar.low, "low")
    volume = _finite(bar.volume, "volume")
    vwap = None if bar.vwap is None else _finite(bar.vwap, "vwap")
    if min(close, high, low) <= 0 or volume < 0:
        raise ValueError(f"bar with a non-positive price or a negative volume: {bar!r}")
    return high, low, close, volume, vwap


class IndicatorEngine:
    """Computes a fixed set of indicators incrementally, over a live or a JSON state.

    A state made by an engine with a different set of indicators (e.g. after a configuration
    change) is discarded and the warm-up starts again, since its running totals cannot serve the
    new set.

    The live state is a ``flinktrade._exact.FlatState`` when the C kernel is built: the same
    numbers as an ``IndicatorState`` in one block of C doubles and integers (no object per close
    or accumulator), advanced by C code that makes the calculators' very operations, so every
    value is the same float (pinned bit for bit against the Python calculators by
    tests/unit/test_flat_state.py). Its snapshot is the same tuple, so either form restores the
    other's. What the C numbers cannot hold exactly (a window value too far in magnitude from the
    others for the fixed-width sums, an argument that is not a float) moves that state to an
    ``IndicatorState`` for good (its ``py``), from the same numbers, before the bar is applied.
    """

    def __init__(self, names: Iterable[str]) -> None:
        self.names, calcs = _parse(names)
        self._fingerprint = ",".join(c.key for c in calcs)  # what the accumulators are for
        # what a snapshot's values are for: the names, as a digest (a snapshot is written per bar)
        self._layout_text = ",".join(self.names)
        self._layout = "v2:" + hashlib.sha256(self._layout_text.encode()).hexdigest()[:16]
        close_window = max((c.n for c in calcs if isinstance(c, _Sma | _Bollinger)), default=0)
        self._blank: Values = dict.fromkeys(self.names)
        self._proto = IndicatorState(self._fingerprint, calcs, close_window)
        self._flat: Any = None  # the C engine of the flat state, when built
        if _FlatEngine is not None:
            spec = tuple([_flat_spec(c) for c in calcs])
            self._flat = _FlatEngine(
                spec, close_window, self._blank, self._layout, self._fingerprint, self.names
            )

    # -- live state ------------------------------------------------------------------------------

    def start(self) -> Any:
        """A fresh live state (nothing seen yet): a ``FlatState`` when the C kernel is built."""
        flat = self._flat
        if flat is not None:
            return flat.start()
        return self._start_python()

    def _start_python(self) -> IndicatorState:
        return copy.deepcopy(self._proto)

    def advance(
        self,
        s: Any,
        high: float,
        low: float,
        close: float,
        volume: float,
        vwap: float | None,
    ) -> Values:
        """Values of every indicator at this bar (None while warming up); ``s`` moves past it.

        Raises ``ValueError`` (``s`` unchanged) for a non-finite or non-positive price or a
        negative volume (the ingest stage rejects those before they reach the job)."""
        if not (
            0.0 < close < _INF
            and 0.0 < high < _INF
            and 0.0 < low < _INF
            and 0.0 <= volume < _INF
            and (vwap is None or -_INF < vwap < _INF)
        ):
            _checked(BarInput(close, high, low, close, volume, vwap))  # raises with the reason
        if type(s) is not IndicatorState:
            flat = self._flat
            if flat is not None:
                out: Values | None = flat.advance(s, high, low, close, volume, vwap)
                if out is not None:
                    return out
            s = self._fallen_back(s)
        return self._advance(s, high, low, close, volume, vwap)

    def _fallen_back(self, s: Any) -> IndicatorState:
        """The ``IndicatorState`` a ``FlatState`` goes on as from now (made once, exactly from its
        numbers): what its C numbers could not take."""
        py = self._python_view(s)
        s.py = py
        return py

    def _advance(
        self,
        s: IndicatorState,
        high: float,
        low: float,
        close: float,
        volume: float,
        vwap: float | None,
    ) -> Values:
        if s.engine != self._fingerprint:
            fresh = self._start_python()
            for name in IndicatorState._fields:
                setattr(s, name, getattr(fresh, name))
        previous = s.prev_close
        s.log_return = None if previous is None else math.log(close / previous)
        s.close, s.high, s.low, s.volume = close, high, low, volume
        s.price = close if vwap is None else vwap
        closes = s.closes
        closes.append(close)
        if len(closes) > s.close_window:
            del closes[0]
        out = self._blank.copy()
        for calc in s.calcs:
            calc.step(s, out)
        s.i += 1
        s.prev_close = close
        return out

    # -- snapshots -------------------------------------------------------------------------------

    def snapshot(self, s: Any) -> tuple[Any, ...]:
        """``s`` as one tuple of plain values (str, int, float, None and tuples of them), sharing
        no mutable object with it; ``restore`` makes an identical live state of it.

        This is what the job writes to Flink state per bar: pickle writes such a tuple in C,
        without the per-object ``__reduce_ex__``/``__getstate__`` calls and the attribute names a
        pickle of the live objects costs; the windows' floats are ``pack``ed (one string each, not
        a float object each), and the indicator set is named by a digest of its names. A state of
        another indicator set (it would be discarded by ``advance``) is ``(None,)``. A
        ``FlatState`` gives the same tuple as the ``IndicatorState`` of the same numbers."""
        if type(s) is not IndicatorState:
            py: IndicatorState | None = s.py
            if py is None:
                snap: tuple[Any, ...] = self._flat.snap(s)  # the C state's own layout
                return snap
            s = py
        return self._snapshot_python(s)

    def _snapshot_python(self, s: IndicatorState) -> tuple[Any, ...]:
        if s.engine != self._fingerprint:
            return (None,)
        return (
            self._layout,
            s.i,
            s.prev_close,
            s.close,
            s.high,
            s.low,
            s.volume,
            s.price,
            s.log_return,
            pack(s.closes),
            tuple([calc.snap() for calc in s.calcs]),
        )

    def restore(self, snap: tuple[Any, ...]) -> Any:
        """The live state ``snapshot`` made ``snap`` of, or a fresh one (the warm-up starts again)
        if ``snap`` is another indicator set's, as ``advance`` would discard it. Raises
        ``ValueError`` (or ``TypeError``) for anything that is not a snapshot. The forms written
        before (the names in full, the windows as tuples of floats) restore alike."""
        flat = self._flat
        if flat is None:
            return self._restore_python(snap)
        s = flat.restore(snap)  # None for anything but this set's snapshot in its current form
        if s is not None:
            return s
        return self._to_flat(self._restore_python(snap))

    def _to_flat(self, s: IndicatorState) -> Any:
        """``s`` as a ``FlatState`` when the C numbers hold it exactly, else ``s`` itself."""
        flat = self._flat
        if flat is None or s.engine != self._fingerprint:
            return s
        made = flat.restore(self._snapshot_python(s))
        return s if made is None else made

    def _restore_python(self, snap: tuple[Any, ...]) -> IndicatorState:
        s = self._start_python()
        if not isinstance(snap, tuple) or not snap:
            raise ValueError(f"not an indicator snapshot: {type(snap).__name__}")
        layout = snap[0]
        if layout not in (self._layout, self._layout_text):
            if layout is None or isinstance(layout, str):
                return s
            raise ValueError(f"not an indicator snapshot: {layout!r}")
        if len(snap) != 11 or len(snap[10]) != len(s.calcs):
            raise ValueError("indicator snapshot of the wrong shape")
        s.i, s.prev_close = snap[1], snap[2]
        s.close, s.high, s.low, s.volume, s.price = snap[3], snap[4], snap[5], snap[6], snap[7]
        s.log_return = snap[8]
        closes = snap[9]  # packed; a tuple of floats before the flat state
        s.closes = unpack(closes) if type(closes) is bytes else list(closes)
        for calc, values in zip(s.calcs, snap[10], strict=True):
            calc.unsnap(values)
        return s

    def _python_view(self, s: Any) -> IndicatorState:
        """``s`` as an ``IndicatorState`` (a ``FlatState``'s: a new one, unless it fell back)."""
        if type(s) is IndicatorState:
            return s
        py: IndicatorState | None = s.py
        return py if py is not None else self._restore_python(self._flat.snap(s))

    # -- JSON state ------------------------------------------------------------------------------

    def initial_state(self) -> dict[str, Any]:
        return self.to_json(self.start())

    def to_json(self, s: Any) -> dict[str, Any]:
        """The live state as a JSON document (no object shared with ``s``)."""
        s = self._python_view(s)
        return {
            "engine": s.engine,
            "n": s.i,
            "prev_close": s.prev_close,
            "closes": list(s.closes),
            "acc": {c.key: c.to_json() for c in s.calcs},
        }

    def from_json(self, doc: dict[str, Any]) -> IndicatorState:
        """A live state from ``to_json``'s document (a fresh one if it is another engine's)."""
        s = self._start_python()
        if doc.get("engine") != self._fingerprint:
            return s
        s.i, s.prev_close, s.closes = doc["n"], doc["prev_close"], list(doc["closes"])
        for calc in s.calcs:
            calc.load(doc["acc"][calc.key])
        return s

    def update(self, state: dict[str, Any], bar: BarInput) -> tuple[Values, dict[str, Any]]:
        """Values of every indicator at ``bar`` (None while warming up) and the JSON state after
        it; ``state`` is not mutated. Raises ``ValueError`` as ``advance``."""
        high, low, close, volume, vwap = _checked(bar)
        live = self.from_json(state)
        values = self.advance(live, high, low, close, volume, vwap)
        return values, self.to_json(live)


def _flat_spec(calc: _Calc) -> tuple[Any, ...]:
    """``calc`` as ``FlatEngine`` takes it: its kind, periods and outputs."""
    if isinstance(calc, _Bollinger):
        return ("bb", calc.n, tuple(calc.bands))
    if isinstance(calc, _Macd):
        return ("macd", calc.fast, calc.slow, calc.sig, tuple(calc.lines))
    kind = {
        _Sma: "sma",
        _Ema: "ema",
        _Rsi: "rsi",
        _Atr: "atr",
        _Vwap: "vwap",
        _Volatility: "volatility",
        _VolumeZ: "volume_z",
    }[type(calc)]
    n: int = calc.n  # type: ignore[attr-defined]
    return (kind, n, calc.key)


_ENGINES: dict[tuple[str, ...], IndicatorEngine] = {}
"""An engine per indicator set, for the states that travel without theirs (pickles)."""


def _engine_for(names: tuple[str, ...]) -> IndicatorEngine:
    engine = _ENGINES.get(names)
    if engine is None:
        engine = _ENGINES[names] = IndicatorEngine(names)
    return engine


def _unflat(names: tuple[str, ...], snap: tuple[Any, ...]) -> Any:
    """A state pickled as ``_reduce_flat`` made it: restored by an engine of its set (a
    ``FlatState``, or an ``IndicatorState`` where the C kernel is not built)."""
    return _engine_for(tuple(names)).restore(snap)


def _reduce_flat(s: Any) -> tuple[Any, ...]:
    """``FlatState.__reduce__``: the indicator set's names and the snapshot, so that a pickle
    restores in either form (and equal states pickle alike)."""
    names: tuple[str, ...] = s.names
    return (_unflat, (names, _engine_for(names).snapshot(s)))


def _flat_calcs(s: Any) -> list[_Calc]:
    """``FlatState.calcs``: the calculators of the same numbers in Python (a copy)."""
    return _engine_for(s.names)._python_view(s).calcs
