"""Strategies: the pure ``Strategy`` contract, the built-ins, and loading user strategies.

``build(name, params)`` resolves ``name`` as, in order:

1. a built-in (``sma_cross``, ``rsi_reversion``, ``bollinger_breakout``, ``sentiment_momentum``);
2. a dotted path ``package.module:ClassName`` (imported, then called with ``params``);
3. an entry point named ``name`` in the group ``flinktrade.strategies`` of an installed package.

Every strategy accepts a ``name`` parameter (for classes whose constructor has none it is set as an
attribute after construction): two instances of one class with different parameters must have
different names, because the name keys the strategy's state and goes into each signal's id.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from flinktrade.errors import ConfigError
from flinktrade.strategies.base import BarView, Intent, State, Strategy
from flinktrade.strategies.bollinger_breakout import BollingerBreakout
from flinktrade.strategies.rsi_reversion import RsiReversion
from flinktrade.strategies.sentiment_momentum import SentimentMomentum
from flinktrade.strategies.sma_cross import SmaCross

ENTRY_POINT_GROUP = "flinktrade.strategies"

BUILTINS: dict[str, Callable[..., Strategy]] = {
    "sma_cross": SmaCross,
    "rsi_reversion": RsiReversion,
    "bollinger_breakout": BollingerBreakout,
    "sentiment_momentum": SentimentMomentum,
}

__all__ = [
    "BUILTINS",
    "ENTRY_POINT_GROUP",
    "BarView",
    "BollingerBreakout",
    "Intent",
    "RsiReversion",
    "SentimentMomentum",
    "SmaCross",
    "State",
    "Strategy",
    "StrategyInfo",
    "available",
    "build",
]


@dataclass(frozen=True)
class StrategyInfo:
    """What ``flinktrade strategies list`` shows about one available strategy."""

    name: str
    source: str  # "builtin" or "entry point"
    doc: str  # first line of the class docstring
    parameters: dict[str, Any] = field(default_factory=dict)  # name -> default (not ``name``)
    required: tuple[str, ...] = ()  # parameters without a default


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _resolve(name: str) -> Callable[..., Any]:
    if name in BUILTINS:
        return BUILTINS[name]
    if ":" in name:
        module_name, _, attribute = name.partition(":")
        if not module_name or not attribute:
            raise ConfigError(f"strategy {name!r}: a dotted path is written 'package.module:Class'")
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # an import runs user code: any error is a configuration error
            raise ConfigError(
                f"strategy {name!r}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
            ) from None
        target: Any = module
        for part in attribute.split("."):
            target = getattr(target, part, None)
            if target is None:
                raise ConfigError(f"strategy {name!r}: {module_name!r} has no {attribute!r}")
        if not callable(target):
            raise ConfigError(f"strategy {name!r}: {attribute!r} is not a class or factory")
        return target  # type: ignore[no-any-return]
    found = _entry_points().get(name)
    if found is None:
        plugins = sorted(_entry_points())
        raise ConfigError(
            f"unknown strategy {name!r} (built-ins: {', '.join(sorted(BUILTINS))}; "
            f"entry points: {', '.join(plugins) or 'none'}; or a dotted path 'package.module:Class')"
        )
    try:
        loaded = found.load()
    except Exception as exc:  # loading runs user code
        raise ConfigError(
            f"strategy {name!r}: entry point {found.value!r} failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    if not callable(loaded):
        raise ConfigError(f"strategy {name!r}: entry point {found.value!r} is not callable")
    return loaded  # type: ignore[no-any-return]


def _accepts(factory: Callable[..., Any], parameter: str) -> bool:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return True
    return any(
        p.name == parameter or p.kind is inspect.Parameter.VAR_KEYWORD
        for p in signature.parameters.values()
    )


def build(name: str, params: Mapping[str, Any]) -> Strategy:
    """Instantiate the strategy ``name`` (built-in, dotted path or entry point) with ``params``.

    Raises ``ConfigError`` with one readable line for an unknown name, an import error, bad
    parameters or an object that does not implement ``Strategy``."""
    factory = _resolve(name)
    kwargs = dict(params)
    if any(not isinstance(key, str) for key in kwargs):
        raise ConfigError(f"strategy {name!r}: parameter names must be strings")
    wanted_name = kwargs.get("name")
    if wanted_name is not None and not (isinstance(wanted_name, str) and wanted_name):
        raise ConfigError(f"strategy {name!r}: 'name' must be a non-empty string")
    if wanted_name is not None and not _accepts(factory, "name"):
        del kwargs["name"]
    try:
        instance = factory(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"strategy {name!r}: {exc}") from None
    except Exception as exc:  # a user constructor may raise anything: report it as configuration
        raise ConfigError(f"strategy {name!r}: {type(exc).__name__}: {exc}") from None
    if wanted_name is not None:
        instance.name = wanted_name
    elif not isinstance(getattr(instance, "name", None), str) or not instance.name:
        instance.name = name
    if not isinstance(instance, Strategy):
        missing = [
            m
            for m in ("indicators", "initial_state", "on_bar")
            if not callable(getattr(instance, m, None))
        ]
        raise ConfigError(
            f"strategy {name!r}: {type(instance).__name__} does not implement Strategy "
            f"(missing {', '.join(missing) or 'name'})"
        )
    return instance


def _info(name: str, source: str, factory: Callable[..., Any]) -> StrategyInfo:
    doc = inspect.getdoc(factory) or ""
    parameters: dict[str, Any] = {}
    required: list[str] = []
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        for p in signature.parameters.values():
            if p.name == "name" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.default is p.empty:
                required.append(p.name)
            else:
                parameters[p.name] = p.default
    first = " ".join(doc.split("\n\n")[0].split())
    return StrategyInfo(name, source, first, parameters, tuple(required))


def available() -> list[StrategyInfo]:
    """The built-ins and the installed entry points, with their parameters and defaults.

    An entry point that fails to load is listed with the error as its description."""
    infos = [_info(name, "builtin", factory) for name, factory in sorted(BUILTINS.items())]
    for ep_name, ep in sorted(_entry_points().items()):
        if ep_name in BUILTINS:
            continue
        try:
            loaded = ep.load()
        except Exception as exc:  # user code; show the failure instead of hiding the plugin
            infos.append(
                StrategyInfo(ep_name, "entry point", f"failed to load: {type(exc).__name__}: {exc}")
            )
            continue
        infos.append(_info(ep_name, "entry point", loaded))
    return infos
