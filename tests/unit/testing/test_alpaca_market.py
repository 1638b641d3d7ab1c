"""The fake Alpaca data API's generated market on its own: sessions, the clock cap, injections."""

from __future__ import annotations

from flinktrade.testing.alpaca_market import MarketTruth, iso, parse_time, session_minutes


def test_session_minutes_skip_the_night_and_the_weekend() -> None:
    friday_late = parse_time("2024-01-05T20:58:00Z")
    monday_open = parse_time("2024-01-08T14:32:00Z")
    minutes = [iso(m * 1_000_000) for m in session_minutes(friday_late, monday_open)]
    assert minutes == [
        "2024-01-05T20:58:00Z",
        "2024-01-05T20:59:00Z",
        "2024-01-08T14:30:00Z",
        "2024-01-08T14:31:00Z",
    ]


def test_the_market_clock_caps_what_rest_returns() -> None:
    start = parse_time("2024-01-02T14:30:00Z")
    end = parse_time("2024-01-02T15:30:00Z")
    capped = MarketTruth(seed=3, clock_ms=parse_time("2024-01-02T14:33:00Z"))
    times = [bar["t"] for bar in capped.bars("AAPL", start, end)]
    assert times == ["2024-01-02T14:30:00Z", "2024-01-02T14:31:00Z", "2024-01-02T14:32:00Z"]
    assert len(MarketTruth(seed=3).bars("AAPL", start, end)) == 61


def test_the_market_is_a_function_of_the_seed() -> None:
    minute = parse_time("2024-01-02T14:30:00Z")
    assert MarketTruth(seed=1).bar("AAPL", minute) == MarketTruth(seed=1).bar("AAPL", minute)
    assert MarketTruth(seed=1).bar("AAPL", minute) != MarketTruth(seed=2).bar("AAPL", minute)


def test_injected_records_are_merged_in_time_order() -> None:
    market = MarketTruth()
    start = parse_time("2024-01-02T14:30:00Z")
    odd = {"t": "2024-01-02T14:30:30Z", "o": "not a number"}
    market.inject("bars", "AAPL", [odd])
    bars = market.bars("AAPL", start, start + 60_000)
    assert [b["t"] for b in bars] == [
        "2024-01-02T14:30:00Z",
        "2024-01-02T14:30:30Z",
        "2024-01-02T14:31:00Z",
    ]
    assert bars[1] is odd
