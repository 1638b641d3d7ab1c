"""News sentiment: a VADER score in [-1, 1] with a lexicon extended for financial headlines.

VADER scores text from a per-token lexicon, with rules for negation, intensifiers, "but", capitals
and punctuation. Its stock lexicon is general-purpose: "beats", "upgrade" or "layoffs" carry no
valence in it, and a phrase such as "raises guidance" is two neutral words. So we add finance
words to the lexicon, and rewrite finance phrases into single tokens before scoring (the tokens
are added to the lexicon too), so VADER's rules still apply around them ("no layoffs").

The analyzer is built once per process, lazily and thread-safely; scoring is pure and
deterministic. Unlike ``polarity_scores()["compound"]``, ``score`` is not rounded.
"""

from __future__ import annotations

import re
import threading
from typing import Any

from vaderSentiment.vaderSentiment import (
    SentimentIntensityAnalyzer,
    normalize,
)

__all__ = ["FINANCE_LEXICON", "FINANCE_PHRASES", "score"]

FINANCE_LEXICON: dict[str, float] = {
    # results against expectations
    "beat": 2.0,
    "beats": 2.0,
    "miss": -2.0,
    "misses": -2.0,
    "missed": -2.0,
    # analysts
    "upgrade": 2.0,
    "upgrades": 2.0,
    "upgraded": 2.0,
    "downgrade": -2.0,
    "downgrades": -2.0,
    "downgraded": -2.0,
    "outperform": 2.0,
    "outperforms": 2.0,
    "outperformed": 2.0,
    "underperform": -2.0,
    "underperforms": -2.0,
    "underperformed": -2.0,
    "overweight": 1.0,
    "underweight": -1.0,
    "bullish": 2.0,
    "bearish": -2.0,
    # corporate events
    "bankruptcy": -3.0,
    "bankrupt": -3.0,
    "insolvency": -3.0,
    "delisting": -2.5,
    "delisted": -2.5,
    "lawsuit": -1.8,
    "lawsuits": -1.8,
    "sues": -1.5,
    "sued": -1.5,
    "probe": -1.2,
    "investigation": -1.2,
    "recall": -1.5,
    "recalls": -1.5,
    "recalled": -1.5,
    "layoff": -2.0,
    "layoffs": -2.0,
    "buyback": 1.5,
    "buybacks": 1.5,
    "default": -1.5,
    "defaults": -1.5,
    "downturn": -1.5,
    # price moves
    "soar": 2.5,
    "soars": 2.5,
    "soared": 2.5,
    "surge": 2.0,
    "surges": 2.0,
    "surged": 2.0,
    "rally": 1.5,
    "rallies": 1.5,
    "rallied": 1.5,
    "plunge": -2.5,
    "plunges": -2.5,
    "plunged": -2.5,
    "tumble": -2.0,
    "tumbles": -2.0,
    "tumbled": -2.0,
    "slump": -2.0,
    "slumps": -2.0,
    "slumped": -2.0,
    "selloff": -2.0,
    "sell-off": -2.0,
}
"""Single finance words and their VADER valence (-4 .. +4), overriding the stock lexicon."""

_UP = r"(?:raise[sd]?|raising|boost(?:s|ed|ing)?|lift(?:s|ed|ing)?|hike[sd]?|hiking|increase[sd]?|increasing|ups)"
_DOWN = r"(?:lower(?:s|ed|ing)?|cut(?:s|ting)?|slash(?:es|ed|ing)?|reduce[sd]?|reducing|trim(?:s|med|ming)?)"
_OUTLOOK = r"(?:guidance|outlook|forecasts?)"
_GAP = r"(?:[\w'-]+\s+){0,3}?"  # up to three words: "raises its full-year guidance"

FINANCE_PHRASES: tuple[tuple[str, str, float], ...] = (
    (rf"{_UP}\s+{_GAP}{_OUTLOOK}", "xguidanceraised", 2.5),
    (rf"{_OUTLOOK}\s+(?:raise|hike|boost|increase)", "xguidanceraised", 2.5),
    (rf"{_DOWN}\s+{_GAP}{_OUTLOOK}", "xguidancecut", -2.5),
    (rf"{_OUTLOOK}\s+(?:cut|reduction|downgrade)", "xguidancecut", -2.5),
    (rf"{_UP}\s+{_GAP}(?:dividends?|payouts?)", "xdividendhike", 2.0),
    (r"(?:dividends?|payouts?)\s+(?:hike|increase|boost|raise)", "xdividendhike", 2.0),
    (
        rf"(?:{_DOWN}|suspend(?:s|ed|ing)?|eliminat(?:es|ed|ing))\s+{_GAP}(?:dividends?|payouts?)",
        "xdividendcut",
        -2.5,
    ),
    (r"(?:dividends?|payouts?)\s+(?:cut|suspension|reduction)", "xdividendcut", -2.5),
    (rf"{_UP}\s+{_GAP}price\s+targets?", "xtargetraised", 1.5),
    (rf"{_DOWN}\s+{_GAP}price\s+targets?", "xtargetcut", -1.5),
    (
        r"record\s+(?:quarterly\s+|annual\s+)?(?:revenues?|sales|profits?|earnings|results)",
        "xrecordresults",
        2.5,
    ),
    (r"(?:record|all[\s-]time)\s+highs?", "xrecordhigh", 2.0),
    (
        r"profit\s+warnings?|warns\s+on\s+(?:profits?|earnings|sales|revenues?)",
        "xprofitwarning",
        -2.5,
    ),
    (r"f[ae]ll(?:s)?\s+short", "xfallsshort", -2.0),
    (r"going[\s-]concern", "xgoingconcern", -2.5),
)
"""(regex, token, valence): phrases rewritten into one lexicon token before scoring."""

_PHRASE_RES = tuple(
    (re.compile(rf"\b{pattern}\b", re.IGNORECASE), token) for pattern, token, _ in FINANCE_PHRASES
)


class _FinanceAnalyzer(SentimentIntensityAnalyzer):  # type: ignore[misc]
    """VADER with the finance lexicon, returning the compound score unrounded."""

    def __init__(self) -> None:
        super().__init__()
        self.lexicon.update(FINANCE_LEXICON)
        self.lexicon.update({token: valence for _, token, valence in FINANCE_PHRASES})

    def score_valence(self, sentiments: list[float], text: str) -> dict[str, Any]:
        # VADER's own score_valence, less the rounding and the pos/neu/neg split we do not use.
        if not sentiments:
            return {"compound": 0.0}
        total = float(sum(sentiments))
        emphasis = self._punctuation_emphasis(text)
        if total > 0:
            total += emphasis
        elif total < 0:
            total -= emphasis
        return {"compound": float(normalize(total))}


_analyzer: _FinanceAnalyzer | None = None
_lock = threading.Lock()


def _get_analyzer() -> _FinanceAnalyzer:
    global _analyzer  # noqa: PLW0603 - the one per-process analyzer, built on first use
    if _analyzer is None:
        with _lock:
            if _analyzer is None:
                _analyzer = _FinanceAnalyzer()
    return _analyzer


def rewrite_phrases(text: str) -> str:
    """``text`` with each finance phrase replaced by its single lexicon token."""
    for pattern, token in _PHRASE_RES:
        text = pattern.sub(token, text)
    return text


def score(headline: str, summary: str = "") -> float:
    """Sentiment of a news story in [-1, 1]: below 0 negative, 0 neutral, above 0 positive.

    The headline and the summary are scored as one text; the result is VADER's compound score
    at full precision."""
    text = headline.strip()
    if summary.strip():
        text = f"{text}. {summary.strip()}" if text else summary.strip()
    if not text:
        return 0.0
    compound = _get_analyzer().polarity_scores(rewrite_phrases(text))["compound"]
    return max(-1.0, min(1.0, float(compound)))
