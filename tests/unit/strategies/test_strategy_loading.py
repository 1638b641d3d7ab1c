"""Resolving strategies: built-ins, dotted paths, entry points; names; listing; the CLI."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flinktrade.errors import ConfigError
from flinktrade.strategies import BUILTINS, RsiReversion, StrategyInfo, available, build
from flinktrade.strategies.cli import app

PLUGIN = '''
from flinktrade.events import Side
from flinktrade.strategies import Intent


class AlwaysBuy:
    """Buys on every bar (a test plugin).

    Second paragraph, not shown in listings."""

    def __init__(self, size: float, note: str = "hi") -> None:
        self.size, self.note = float(size), note
        self.name = "always_buy"

    def indicators(self):
        return set()

    def initial_state(self):
        return {}

    def on_bar(self, bar, state):
        return [Intent(Side.BUY, 1.0, self.note)], state


class NoName:
    def indicators(self):
        return set()

    def initial_state(self):
        return {}

    def on_bar(self, bar, state):
        return [], state


class NotAStrategy:
    pass


def broken():
    raise RuntimeError("boom in constructor")
'''


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh importable module holding test strategy classes; returns its name."""
    name = f"ft_plugin_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


@pytest.fixture
def entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, plugin_module: str) -> str:
    """An installed distribution (a real dist-info on sys.path) registering two entry points."""
    dist = tmp_path / "ft_test_plugins-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ft-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent(f"""
        [flinktrade.strategies]
        always_buy = {plugin_module}:AlwaysBuy
        broken_plugin = {plugin_module}_missing:Nope
        """)
    )
    return "always_buy"


def test_builtins_build_with_defaults_and_parameters() -> None:
    for name in BUILTINS:
        strategy = build(name, {})
        assert strategy.name == name
        assert strategy.indicators()
    rsi = build("rsi_reversion", {"period": 7})
    assert isinstance(rsi, RsiReversion)
    assert rsi.indicators() == {"rsi_7"}


def test_the_name_parameter_distinguishes_instances_of_one_class() -> None:
    a = build("rsi_reversion", {"period": 7, "name": "rsi_fast"})
    b = build("rsi_reversion", {"period": 21, "name": "rsi_slow"})
    assert (a.name, b.name) == ("rsi_fast", "rsi_slow")


def test_a_dotted_path_is_imported_and_called_with_the_parameters(plugin_module: str) -> None:
    strategy = build(f"{plugin_module}:AlwaysBuy", {"size": 2, "note": "x"})
    assert strategy.name == "always_buy"
    assert strategy.size == 2.0  # type: ignore[attr-defined]


def test_name_is_set_on_classes_that_do_not_take_it(plugin_module: str) -> None:
    named = build(f"{plugin_module}:AlwaysBuy", {"size": 1, "name": "buy_1"})
    assert named.name == "buy_1"
    anonymous = build(f"{plugin_module}:NoName", {})
    assert anonymous.name == f"{plugin_module}:NoName"


def test_an_entry_point_is_found_by_name(entry_point: str) -> None:
    strategy = build(entry_point, {"size": 3})
    assert strategy.name == "always_buy"


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("nope", {}, "unknown strategy 'nope' .*built-ins: bollinger_breakout"),
        ("no_such_module_xyz:Thing", {}, "cannot import 'no_such_module_xyz'"),
        ("{mod}:Missing", {}, "has no 'Missing'"),
        ("{mod}:AlwaysBuy", {}, "missing 1 required positional argument: 'size'"),
        ("{mod}:AlwaysBuy", {"size": 1, "colour": "red"}, "unexpected keyword argument 'colour'"),
        ("{mod}:NotAStrategy", {}, "does not implement Strategy"),
        ("{mod}:broken", {}, "RuntimeError: boom in constructor"),
        (":Thing", {}, "package.module:Class"),
        ("sma_cross", {"fast": "ten"}, "sma_cross"),
        ("sma_cross", {"name": ""}, "non-empty string"),
    ],
)
def test_errors_are_one_line_config_errors(
    plugin_module: str, name: str, params: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        build(name.format(mod=plugin_module), params)
    assert "\n" not in str(caught.value)


def test_a_broken_entry_point_is_a_config_error(entry_point: str) -> None:
    with pytest.raises(ConfigError, match=r"entry point .* failed to load"):
        build("broken_plugin", {})


def test_available_lists_builtins_and_entry_points_with_defaults(entry_point: str) -> None:
    infos = {info.name: info for info in available()}
    assert infos["rsi_reversion"] == StrategyInfo(
        "rsi_reversion",
        "builtin",
        "RSI mean reversion: buy as RSI rises through ``low``, sell as it falls through ``high``.",
        {
            "period": 14,
            "low": 30.0,
            "high": 70.0,
            "take_profit_pct": None,
            "stop_loss_pct": None,
            "trail_pct": None,
        },
    )
    assert infos["always_buy"] == StrategyInfo(
        "always_buy",
        "entry point",
        "Buys on every bar (a test plugin).",
        {"note": "hi"},
        ("size",),
    )
    assert infos["broken_plugin"].doc.startswith("failed to load: ModuleNotFoundError")
    assert set(BUILTINS) <= set(infos)


def test_cli_lists_strategies(entry_point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["list"])
    assert result.exit_code == 0, result.output
    for expected in ("sma_cross", "fast=20, slow=50", "builtin", "always_buy", "entry point"):
        assert expected in result.output
    assert "size (required)" in result.output
