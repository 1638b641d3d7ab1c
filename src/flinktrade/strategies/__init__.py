"""Strategies: the pure ``Strategy`` contract and the built-ins, looked up by name."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flinktrade.errors import ConfigError
from flinktrade.strategies.base import BarView, Intent, State, Strategy
from flinktrade.strategies.sma_cross import SmaCross

BUILTINS: dict[str, Callable[..., Strategy]] = {"sma_cross": SmaCross}

__all__ = ["BUILTINS", "BarView", "Intent", "SmaCross", "State", "Strategy", "build"]


def build(name: str, params: Mapping[str, Any]) -> Strategy:
    """Instantiate a built-in strategy by name with its parameters (a readable error if wrong)."""
    factory = BUILTINS.get(name)
    if factory is None:
        raise ConfigError(f"unknown strategy {name!r} (built-ins: {', '.join(sorted(BUILTINS))})")
    try:
        return factory(**params)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from None
