"""Keeps ``bench/backtest.py`` runnable: its ``--quick`` size, both contenders, no Flink.

Not a speed test (speed is measured by ``make bench``): it checks that each contender ran over
every bar of both workloads, traded, and reported its figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_the_quick_backtest_bench_reports_every_contender_and_workload() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.backtest", "--quick", "--no-flink"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    runs = {(line["workload"], line["engine"]): line for line in lines if "engine" in line}
    assert set(runs) == {
        (w, e)
        for w in ("today", "backtrader")
        for e in ("inprocess", "inprocess-workers", "backtrader")
    }
    for (workload, _engine), line in runs.items():
        assert line["bars"] == {"today": 5 * 390, "backtrader": 10 * 2_000}[workload]
        assert line["signals"] > 0
        assert line["cpu_s"] > 0 and line["peak_rss_mb"] > 0
    split = runs[("backtrader", "inprocess")]["split_s"]
    assert set(split) == {"core", "input_bars", "engine_rest", "simulate_metrics"}
    summaries = [line for line in lines if "ratio_cpu" in line]
    assert [s["workload"] for s in summaries] == ["today", "backtrader"]
    assert all(s["ratio_wall_workers"] > 0 for s in summaries)
    workers = runs[("backtrader", "inprocess-workers")]
    assert (
        workers["jobs"] >= 1 and workers["signals"] == runs[("backtrader", "inprocess")]["signals"]
    )


def test_the_ab_run_reports_each_side_of_each_pair() -> None:
    """``--baseline``: this checkout against a checkout (here itself), pairs interleaved."""
    command = ["-m", "bench.backtest", "--baseline", str(ROOT), "--pairs", "2"]
    done = subprocess.run(
        [sys.executable, *command, "--symbols", "2", "--bars", "400"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    runs, [summary] = lines[:-1], lines[-1:]
    assert [(r["pair"], r["side"]) for r in runs] == [
        (0, "current"), (0, "baseline"), (1, "baseline"), (1, "current")
    ]  # fmt: skip
    assert all(r["bars"] == 800 and r["signals"] > 0 for r in runs)
    assert summary["cpu_s"] == {
        side: [r["cpu_s"] for r in runs if r["side"] == side] for side in ("current", "baseline")
    }
    assert summary["speedup"] > 0


def test_a_baseline_that_is_not_a_checkout_is_one_readable_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.backtest", "--baseline", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "not a flinktrade checkout" in done.stderr
    assert "Traceback" not in done.stderr
