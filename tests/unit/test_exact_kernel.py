"""The exact windows' C kernel (``flinktrade/_exact.c``): the same integers and the same floats as
exact rational arithmetic, and a window it cannot hold goes on in Python, exactly."""

from __future__ import annotations

import math
import os
import pickle
import random
import re
import struct
import sys
from fractions import Fraction

import pytest

from flinktrade import accel, indicators
from flinktrade.indicators import ExactSum, ExactWindow, _PySums, unpack

pytestmark = pytest.mark.skipif(
    os.environ.get(accel.PURE_ENV, "") not in ("", "0"), reason="pure Python requested"
)


@pytest.fixture(scope="module")
def sums() -> type:
    """The C kernel: ``make setup`` builds it, so a checkout without it fails here."""
    assert accel.status()["compiled"], accel.status()["reason"]
    assert indicators._CSums is not None
    return indicators._CSums


def _exact(xs: list[float]) -> tuple[float, float, float]:
    """(total, mean, population variance) of ``xs``, each rounded once from the exact value."""
    values = [Fraction(x) for x in xs]
    total = sum(values, Fraction(0))
    mean = total / len(values)
    variance = sum(((v - mean) ** 2 for v in values), Fraction(0)) / len(values)
    return float(total), float(mean), float(variance)


def _value(rng: random.Random, kind: int) -> float:
    if kind == 0:  # prices in cents
        return round(rng.uniform(1, 500), 2)
    if kind == 1:  # log returns
        return rng.gauss(0, 0.002)
    if kind == 2:  # volumes
        return float(rng.randrange(0, 10**7))
    if kind == 3:  # magnitudes 1e-12 .. 1e6
        return rng.gauss(0, 1) * 10.0 ** rng.randint(-12, 6)
    if kind == 4:  # any bit pattern of a float below 1e150 (a variance above 1e308 overflows)
        while True:
            x: float = struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0]
            if math.isfinite(x) and abs(x) < 1e150:
                return x
    if kind == 5:
        return rng.choice([0.1, 0.3, 1.0, -0.0, 0.0, 5e-324, 1e-300, 1e150, 2.0**-1022, 2.0**99])
    return round(rng.uniform(1, 500), 2) * rng.randrange(1, 10_000)  # price x volume


@pytest.mark.parametrize("seed", range(4))
def test_windows_give_the_exactly_rounded_sums_whatever_kernel_holds_them(
    sums: type, seed: int
) -> None:
    """Random windows of mixed magnitudes (some too wide for the C kernel, which then hands the
    window to the Python one): every value's total, mean and variance is the float nearest the
    exact rational, sign of zero included, and the state is the Python kernel's integer for
    integer."""
    rng = random.Random(seed)
    moved = 0
    for _trial in range(200):
        n = rng.choice([1, 2, 3, 5, 20, 50])
        kinds = rng.sample(range(7), rng.randint(1, 3))
        window, reference, pushed = ExactWindow(n), _PySums(n, True), []
        for _ in range(rng.randint(1, 80)):
            x = _value(rng, rng.choice(kinds))
            window.push(x)
            reference.push(x)
            pushed.append(x)
            last = pushed[-n:]
            total, mean, variance = _exact(last)
            got = (window.total(), window.mean(), window.variance())
            assert got == (total, mean, variance), (last, got)
            assert math.copysign(1, got[0]) == math.copysign(1, total)
            assert (window.shift, window.values, window.s1, window.s2, window.xs) == (
                reference.shift, reference.values, reference.s1, reference.s2, reference.xs
            )  # fmt: skip
        moved += type(window.k) is _PySums
    assert moved, "no window left the C kernel: the fallback went untested"


def test_the_c_kernel_takes_the_everyday_windows(sums: type) -> None:
    """Prices in cents, log returns, volumes and price x volume stay in the C kernel."""
    rng = random.Random(7)
    for kind in (0, 1, 2, 6):
        window = ExactWindow(20) if kind != 6 else ExactSum(20)
        for _ in range(500):
            window.push(_value(rng, kind))
        assert type(window.k) is sums, kind


def test_quotients_above_two_to_the_53_round_once(sums: type) -> None:
    """The mean of three integers whose sum is above 2**53: the nearest float to the exact
    quotient (dividing two floats would round twice and miss it by an ulp, as mypyc's own int /
    int does; the Python kernel divides through the operator for that reason)."""
    xs = [119781612430106304.0, 2259908711940096.0, 31783911103219632.0]
    exact = float(Fraction(int(sum(map(int, xs))), 3))
    assert exact != float(sum(map(int, xs))) / 3.0  # the twice-rounded value differs
    for kernel in (sums(3, True), _PySums(3, True)):
        for x in xs:
            kernel.push(x)
        assert kernel.mean() == exact, type(kernel)


def test_subnormal_and_huge_results_are_python_s(sums: type) -> None:
    """A variance below the smallest normal float and a total near the largest are computed with
    Python integers (the fast path refuses them), equal to the exact value's float."""
    tiny = sums(4, True)
    for x in (1e-160, 3e-160, 2e-160, 5e-160):
        assert tiny.push(x)
    assert tiny.variance() == _exact([1e-160, 3e-160, 2e-160, 5e-160])[2]
    assert 0 < tiny.variance() < 2.0**-1022
    big = sums(2, False)
    assert big.push(2.0**99) and big.push(2.0**99)
    assert big.total() == 2.0**100


def test_values_too_wide_are_refused_unchanged(sums: type) -> None:
    kernel = sums(3, True)
    assert kernel.push(1.5) and kernel.push(2.25)
    before = (kernel.shift, kernel.values, kernel.s1, kernel.s2, kernel.xs)
    for wide in (1e300, 5e-324, 2.0**-120, math.inf, math.nan):
        assert kernel.push(wide) is False
        assert (kernel.shift, kernel.values, kernel.s1, kernel.s2, kernel.xs) == before
    assert kernel.rebuild(0, [1e300]) is False
    with pytest.raises(ValueError, match="needs a shift above 0"):
        kernel.rebuild(0, [0.5])


def test_a_window_moved_to_python_pickles_and_snaps_as_one_that_never_was() -> None:
    """The kernel is invisible in what is stored: pickles and snapshots of a window that moved to
    the Python kernel equal those of the same values pushed into a Python-kernel window."""
    xs = [101.25, 99.5, 1e-30, 100.75, 98.0, 101.0]
    window, reference = ExactWindow(4), ExactWindow(4)
    reference.k = _PySums(4, True)
    for x in xs:
        window.push(x)
        reference.push(x)
    assert type(window.k) is _PySums  # 1e-30 next to 101.25 needs over 100 bits
    assert pickle.dumps(window) == pickle.dumps(reference)
    assert window.snap() == reference.snap()
    restored = pickle.loads(pickle.dumps(window))
    assert (restored.total(), restored.variance()) == (window.total(), window.variance())


def test_non_finite_values_fail_as_before() -> None:
    window = ExactWindow(3)
    window.push(1.0)
    with pytest.raises(OverflowError):
        window.push(math.inf)
    with pytest.raises(ValueError):
        window.push(math.nan)


def test_the_kernel_keeps_its_floats_as_doubles_and_snaps_them_packed(sums: type) -> None:
    """The kernel holds no reference to a float pushed (it keeps the double), and its snapshot is
    the window's floats packed, oldest first, bit for bit (``-0.0`` included)."""
    x = float("1.2345")  # an object of its own
    base = sys.getrefcount(x)
    kernel = sums(3, True)
    for _ in range(10):
        kernel.push(x)
    assert sys.getrefcount(x) - base == 0
    pushed = [2.5, -0.0, 0.1]
    for value in pushed:
        assert kernel.push(value)
    shift, packed = kernel.snap()
    assert shift == kernel.shift and type(packed) is bytes
    assert packed == struct.pack("<3d", *pushed)
    assert [math.copysign(1.0, v) for v in unpack(packed)] == [1.0, -1.0, 1.0]
    assert kernel.xs == pushed
    assert kernel.rebuild(kernel.shift, [x, x])
    assert kernel.snap() == (kernel.shift, struct.pack("<2d", x, x))
    assert sys.getrefcount(x) - base == 0


def _price_text(rng: random.Random) -> str:
    """A price text: mostly the job's shape (some of it zero, too long or inconsistent in a
    bar), else a text the full check must read (fewer or more decimals, signs, exponents,
    spaces, non-ASCII digits, specials)."""
    kind = rng.randrange(12)
    if kind < 6:  # the job's shape, 1 to 13 digits before the point
        return f"{rng.randrange(10 ** rng.randint(1, 13))}.{rng.randrange(10**6):06d}"
    if kind == 6:
        return rng.choice(["0.000000", "000000000000.000000", "0.000001", "999999999999.999999"])
    if kind == 7:
        return f"{rng.randrange(1000)}.{rng.randrange(10**5):05d}"
    if kind == 8:
        return f"{rng.randrange(1000)}.{rng.randrange(10**7):07d}"
    if kind == 9:
        return rng.choice(["-1.500000", "+1.500000", "1.5E+2", "1e400", " 1.000000", "1.000000 "])
    if kind == 10:
        return rng.choice(["１.０００００٠", "1.00000٠", "NaN", "sNaN", "Infinity", "1_0.000000"])
    return rng.choice(["", ".500000", "1.", "1..00000", "1.000000\x00", "12.34a678"])


def test_the_bar_prices_fast_path_passes_only_bars_the_full_check_passes() -> None:
    """``bar_prices_ok`` (C) says True only where ``pipeline.due._bar_problem`` finds nothing
    wrong with the prices (the job skips that part of the check then), and it says True for the
    bars the job's text carries, so the fast path is the one taken."""
    from decimal import Decimal, InvalidOperation

    from flinktrade.pipeline import due
    from flinktrade.pipeline.analytics import closed_bar

    assert accel.status()["compiled"], accel.status()["reason"]
    assert due._bar_prices_ok is not due._full_check
    rng = random.Random(16)
    shape = re.compile(r"[0-9]{1,12}\.[0-9]{6}", re.ASCII)
    passed = 0
    for _ in range(40_000):
        texts = [_price_text(rng) for _ in range(4)]
        if rng.random() < 0.5:  # a consistent bar more often than chance gives one
            texts.sort(key=lambda t: (len(t), t))
            texts = [texts[rng.choice((1, 2))], texts[3], texts[0], texts[rng.choice((1, 2))]]
        fast = due._bar_prices_ok(*texts)
        try:
            prices = [Decimal(t) for t in texts]
            bar = closed_bar("AAA", 0, *prices, 100, 1.0, 3, 60_000)
            full = due._bar_problem(bar)
        except (InvalidOperation, ValueError, TypeError) as exc:
            full = repr(exc)
        if fast:
            passed += 1
            assert full is None, (texts, full)
        elif all(shape.fullmatch(t) for t in texts):  # the job's shape: refused for a reason
            assert full is not None, texts
    assert passed > 1_000
    assert due._bar_prices_ok("101.500000", "102.000000", "100.000001", "101.000000")
    for bad in (None, 101, Decimal("101.500000"), b"101.500000"):
        assert not due._bar_prices_ok(bad, "102.000000", "100.000001", "101.000000")
