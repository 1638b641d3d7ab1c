"""Keeps ``bench/inputs.py`` runnable: this checkout against itself, one pair, tiny inputs.

Not a speed test (the figures are in ``docs/backtest.md``, "Speed"): it checks that each side of
each pair ran for each input and that the summaries add up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench.inputs", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _lines(done: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert done.returncode == 0, done.stderr[-2000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def test_the_input_ab_runs_each_side_of_each_input() -> None:
    lines = _lines(_bench("--baseline", str(ROOT), "--pairs", "1", "--symbols", "2", "--bars",
                          "50", "--simulate", "2x10", "--scope", "input"))  # fmt: skip
    assert lines[0] == {"parquet_bars": 100}
    runs = [line for line in lines if "side" in line]
    assert [(r["input"], r["pair"], r["side"]) for r in runs] == [
        ("parquet", 0, "current"), ("parquet", 0, "baseline"),
        ("simulate", 0, "current"), ("simulate", 0, "baseline"),
    ]  # fmt: skip
    assert all(r["cpu_s"] > 0 for r in runs)
    summaries = [line for line in lines if line.get("bench") == "inputs_ab"]
    assert [s["input"] for s in summaries] == ["parquet", "simulate"]
    for summary in summaries:
        mine = [r["cpu_s"] for r in runs if r["input"] == summary["input"]]
        assert sorted(summary["cpu_s"]["current"] + summary["cpu_s"]["baseline"]) == sorted(mine)


def test_the_whole_command_ab_and_a_bad_baseline() -> None:
    lines = _lines(_bench("--baseline", str(ROOT), "--pairs", "1", "--inputs", "simulate",
                          "--simulate", "2x10"))  # fmt: skip
    [summary] = [line for line in lines if line.get("bench") == "inputs_ab"]
    assert summary["scope"] == "command" and summary["args"] == ["--simulate", "2x10"]
    assert all(seconds > 0 for runs in summary["cpu_s"].values() for seconds in runs)
    bad = _bench("--baseline", str(ROOT / "docs"))
    assert bad.returncode == 2 and "not a flinktrade checkout" in bad.stderr
