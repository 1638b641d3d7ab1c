"""The reference itself is checked against numbers worked out by hand."""

from decimal import Decimal as D

from flinktrade.testing import reference


def test_bars_fold_trades_by_minute_and_symbol() -> None:
    trades = [
        ("A", D("10.00"), 1, 0),
        ("A", D("12.00"), 3, 30_000),
        ("B", D("5.00"), 2, 10_000),
        ("A", D("11.00"), 1, 59_999),
        ("A", D("9.00"), 2, 60_000),
    ]
    bars = reference.bars(trades)
    assert [(b.symbol, b.ts) for b in bars] == [("A", 0), ("A", 60_000), ("B", 0)]
    a0 = bars[0]
    assert (a0.open, a0.high, a0.low, a0.close, a0.volume, a0.trades) == (
        D("10.00"),
        D("12.00"),
        D("10.00"),
        D("11.00"),
        5,
        3,
    )
    assert a0.vwap == (10 + 36 + 11) / 5


def test_sma_and_crossovers() -> None:
    closes = ["3", "1", "1", "4", "5", "1"]
    bars = [reference.RefBar("A", i * 60_000, D(c), D(c), D(c), D(c)) for i, c in enumerate(closes)]
    reference.add_sma(bars, [2, 3])
    assert [b.indicators["sma_2"] for b in bars] == [None, 2.0, 1.0, 2.5, 4.5, 3.0]
    assert [b.indicators["sma_3"] for b in bars] == [None, None, 5 / 3, 2.0, 10 / 3, 10 / 3]
    # fast - slow: -, +, +, -  -> buy at bar 3, sell at bar 5
    assert reference.sma_cross_signals(bars, 2, 3) == [
        ("A", 180_000, "buy"),
        ("A", 300_000, "sell"),
    ]


def test_equal_smas_are_a_tie_whatever_float_rounding_says() -> None:
    # At the last bar SMA2 = (8.82 + 1.64) / 2 = 5.23 and SMA5 = 26.15 / 5 = 5.23 exactly, but in
    # float 26.15 / 5 is 5.2299999999999995: a tie (no signal) must not read as a crossover.
    closes = ["30", "3.61", "2.2", "9.88", "8.82", "1.64"]
    bars = [reference.RefBar("A", i * 60_000, D(c), D(c), D(c), D(c)) for i, c in enumerate(closes)]
    reference.add_sma(bars, [2, 5])
    assert bars[4].indicators["sma_2"] < bars[4].indicators["sma_5"]  # type: ignore[operator]
    assert bars[5].exact["sma_2"] == bars[5].exact["sma_5"] == D("5.23")
    assert bars[5].indicators["sma_5"] == 5.23
    assert reference.sma_cross_signals(bars, 2, 5) == []
