"""News sentiment: signs chosen by hand for finance headlines, range, precision, determinism."""

from __future__ import annotations

import threading

import pytest
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from flinktrade import sentiment
from flinktrade.sentiment import score

POSITIVE = [
    "Apple beats estimates and raises full-year guidance",
    "Acme announces record revenue",
    "Acme hikes dividend",
    "Acme raises its quarterly dividend",
    "Analyst upgrades Acme to outperform",
    "Acme unveils $10 billion buyback",
    "Acme shares soar to all-time high",
    "Acme reports no layoffs this year",
    "Acme boosts 2025 outlook",
]
NEGATIVE = [
    "Acme misses estimates, cuts guidance",
    "Acme lowers its full-year outlook",
    "Acme announces layoffs",
    "Acme files for bankruptcy",
    "Acme shares plunge after profit warning",
    "Acme downgraded to underperform at Goldman",
    "Acme suspends its quarterly dividend",
    "Acme faces lawsuit over recall",
    "Acme revenue falls short of expectations",
    "Auditor raises going concern doubts about Acme",
]
NEUTRAL = [
    "Acme to present at investor conference on Tuesday",
    "Acme schedules third-quarter earnings call",
    "Acme appoints new chief financial officer",
    "",
]
# Phrases stock VADER scores as neutral (0.0): only the finance extension gives them a sign.
NEUTRAL_FOR_STOCK_VADER = [
    ("Acme raises guidance", 1),
    ("Acme announces record revenue", 1),
    ("Acme hikes dividend", 1),
    ("Acme announces layoffs", -1),
    ("Acme files for bankruptcy", -1),
    ("Acme suspends its quarterly dividend", -1),
]


@pytest.mark.parametrize("headline", POSITIVE)
def test_positive_finance_headlines(headline: str) -> None:
    assert score(headline) > 0.2


@pytest.mark.parametrize("headline", NEGATIVE)
def test_negative_finance_headlines(headline: str) -> None:
    assert score(headline) < -0.2


@pytest.mark.parametrize("headline", NEUTRAL)
def test_neutral_headlines(headline: str) -> None:
    assert score(headline) == 0.0


@pytest.mark.parametrize(("headline", "sign"), NEUTRAL_FOR_STOCK_VADER)
def test_the_finance_lexicon_is_what_gives_these_a_sign(headline: str, sign: int) -> None:
    assert SentimentIntensityAnalyzer().polarity_scores(headline)["compound"] == 0.0
    assert score(headline) * sign > 0.2


def test_a_bad_word_in_a_phrase_is_not_counted_twice() -> None:
    # "cut" alone is negative in VADER; as part of "cuts guidance" it is one phrase token
    assert sentiment.rewrite_phrases("Acme cuts its full-year guidance") == "Acme xguidancecut"


def test_summary_counts_with_the_headline() -> None:
    headline = "Acme reports second-quarter results"
    assert score(headline) == 0.0
    assert score(headline, "Revenue beat estimates; the company raised guidance.") > 0.2
    assert score(headline, "Revenue missed estimates and the company cut guidance.") < -0.2
    assert score("", "Acme announces layoffs") == score("Acme announces layoffs")


def test_range_and_full_precision() -> None:
    texts = (
        POSITIVE
        + NEGATIVE
        + [
            "BEST!!! GREAT!!! AMAZING!!! record revenue, beats, soars, upgrade, outperform!!!",
            "worst bankruptcy fraud plunge layoffs lawsuit downgrade miss!!!",
        ]
    )
    values = [score(t) for t in texts]
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert all(isinstance(v, float) for v in values)
    # VADER's polarity_scores rounds to 4 decimals; ours does not
    assert any(v != round(v, 4) for v in values)


def test_deterministic_and_one_analyzer_per_process() -> None:
    first = [score(t) for t in POSITIVE + NEGATIVE]
    seen: list[object] = []
    threads = [
        threading.Thread(target=lambda: seen.append(sentiment._get_analyzer())) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(a) for a in seen}) == 1
    assert [score(t) for t in POSITIVE + NEGATIVE] == first
