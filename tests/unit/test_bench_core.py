"""``bench.core``'s split and A/B modes run on a tiny workload and report what they promise (no
timing is asserted: speed is measured by the benchmark itself)."""

from __future__ import annotations

from pathlib import Path

from bench import core

from flinktrade.config import AnalyticsSettings
from flinktrade.pipeline.analytics import ClosedBar, SymbolModel

SRC = Path(core.__file__).resolve().parent.parent / "src"


def test_split_reports_each_part_of_the_bar_path() -> None:
    parts = core.split(core.workload(2, 60), repeats=1)
    assert list(parts) == [
        "indicators",
        "model, no strategy",
        "model, 4 idle strategies",
        "model, 4 built-ins",
    ]
    assert all(value > 0 for value in parts.values())


def test_idle_strategies_leave_only_the_bar_and_its_alerts() -> None:
    bars = [item for item in core.workload(1, 120) if isinstance(item, ClosedBar)]
    model = SymbolModel((), AnalyticsSettings())
    model._runs = [(f"idle_{i}", core._Idle(f"idle_{i}"), frozenset(), ()) for i in range(4)]
    state = model.initial_state()
    kinds = {type(event).__name__ for bar in bars for event in model.on_bar(state, bar)}
    assert "AnalyticsBar" in kinds and "Signal" not in kinds
    assert set(state["strategies"]) == {f"idle_{i}" for i in range(4)}


def test_against_alternates_fresh_processes_of_both_checkouts() -> None:
    line = core.against(str(SRC), pairs=2, symbols=1, bars=60, repeats=1)
    assert line["contender"] == "core-ab"
    assert line["against"] == str(SRC)
    assert [len(line["runs"]["A"]), len(line["runs"]["B"])] == [2, 2]
    assert line["us_per_bar"]["against"] > 0 and line["us_per_bar"]["this"] > 0
