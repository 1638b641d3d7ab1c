"""The ``--where`` expression language: what it computes and what it refuses."""

from __future__ import annotations

import pytest

from flinktrade.backtest.expr import Expression
from flinktrade.errors import ConfigError

NAMES = ("fast", "slow", "k")


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("fast < slow", {"fast": 5, "slow": 20}, True),
        ("fast < slow", {"fast": 20, "slow": 20}, False),
        ("slow - fast >= 10", {"fast": 5, "slow": 14}, False),
        ("1 + 2 * 3", {}, 7),
        ("(1 + 2) * 3", {}, 9),
        ("-fast + 10 // 3 % 2", {"fast": 4}, -3),
        ("7 / 2", {}, 3.5),
        ("5 <= fast < slow <= 30", {"fast": 5, "slow": 30}, True),
        ("5 <= fast < slow <= 30", {"fast": 5, "slow": 31}, False),
        ("fast == 5 or slow == 5 and k == 1", {"fast": 5, "slow": 1, "k": 0}, True),
        ("(fast == 5 or slow == 5) and k == 1", {"fast": 5, "slow": 1, "k": 0}, False),
        ("not fast > slow", {"fast": 1, "slow": 2}, True),
        ("k * 0.5 != 1.5e0", {"k": 3}, False),
        ("true and not false", {}, True),
    ],
)
def test_values(text: str, values: dict[str, float], expected: object) -> None:
    assert Expression.parse(text, NAMES).evaluate(values) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("fast <", "unexpected end"),
        ("fast slow", "unexpected 'slow'"),
        ("(fast < slow", "missing ')'"),
        ("nope > 1", "unknown name 'nope'"),
        ("__import__('os')", "unexpected character"),
        ("__import__(1)", "unknown name '__import__'"),
        ("fast.real > 1", "unexpected character '.'"),
        ("len(fast)", "unknown name 'len'"),
        ("fast[0]", "unexpected character '['"),
        ("fast ** 2", "unexpected '*'"),
        ("fast and", "unexpected end"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="--where") as caught:
        Expression.parse(text, NAMES)
    assert message in str(caught.value)


def test_division_by_zero_is_a_configuration_error_naming_the_values() -> None:
    expression = Expression.parse("slow / (fast - 5) > 1", NAMES)
    assert expression.holds({"fast": 6, "slow": 2})
    with pytest.raises(ConfigError, match="division by zero at fast=5, slow=2"):
        expression.holds({"fast": 5, "slow": 2})
