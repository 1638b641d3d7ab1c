"""``optimize``: grids, constraints and sampling; a sweep against a loop of single backtests and
against backtesting.py's own ``Backtest.optimize``; walk-forward; the command's files."""

from __future__ import annotations

import csv
import json
import subprocess
import warnings
from pathlib import Path

import pytest
from backtesting import Backtest
from backtesting.test import GOOG
from tests.unit.backtest.factories import simulated_market
from tests.unit.backtest.test_inprocess import SmaCross, _goog_bars

from flinktrade import events
from flinktrade.backtest import BacktestRequest, CashMode, ExecutionModel, Mode
from flinktrade.backtest import optimize as opt
from flinktrade.backtest.expr import Expression
from flinktrade.backtest.inprocess import Feed, run_inprocess
from flinktrade.errors import ConfigError
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.testing.command import run_flinktrade


def test_grids() -> None:
    assert opt.parse_grid(["fast=5:30:5", "slow=20:100:10"]) == {
        "fast": [5, 10, 15, 20, 25, 30],
        "slow": [20, 30, 40, 50, 60, 70, 80, 90, 100],
    }
    assert opt.parse_grid(["x=0.1:0.3:0.1"]) == {"x": [0.1, 0.2, 0.3]}
    assert opt.parse_grid(["x=1:2:0.5"]) == {"x": [1.0, 1.5, 2.0]}
    assert opt.parse_grid(["n=3,1,3,2", "m=7"]) == {"n": [3, 1, 2], "m": [7]}
    for bad, message in [
        ("fast", "expected name="),
        ("fast=1:2", "start:stop:step"),
        ("fast=5:1:1", "start <= stop"),
        ("fast=1:5:0", "step > 0"),
        ("fast=a:b:c", "not a number"),
    ]:
        with pytest.raises(ConfigError, match=message):
            opt.parse_grid([bad])
    with pytest.raises(ConfigError, match="twice"):
        opt.parse_grid(["a=1", "a=2"])


def test_constraints_and_seeded_sampling() -> None:
    grid = opt.parse_grid(["fast=5:30:5", "slow=20:100:10"])
    where = Expression.parse("fast < slow", grid)
    every = opt.candidates(grid, where)
    assert len(every) == 6 * 9 - 4  # (20, 20), (25, 20), (30, 20), (30, 30) fail
    assert every[0] == {"fast": 5, "slow": 20} and {"fast": 30, "slow": 30} not in every
    drawn = opt.candidates(grid, where, sample=10, seed=3)
    assert len(drawn) == 10 and all(s in every for s in drawn)
    assert drawn == sorted(drawn, key=every.index)  # grid order kept
    assert drawn == opt.candidates(grid, where, sample=10, seed=3)
    assert drawn != opt.candidates(grid, where, sample=10, seed=4)
    assert opt.candidates(grid, where, sample=1000) == every
    with pytest.raises(ConfigError, match="no parameter set"):
        opt.candidates(grid, Expression.parse("fast > slow + 100", grid))


def test_a_sweep_equals_a_loop_of_single_backtests() -> None:
    """20 simulated symbols with news, 9 sets (2 refused by the strategy), two workers."""
    bars, news = simulated_market(symbols=20, minutes=120, seed=5)
    model = ExecutionModel(cash=20_000, commission=0.0005, mode=Mode.REVERSE)
    sets = opt.candidates(opt.parse_grid(["fast=3:9:3", "slow=5:21:8"]))
    sweep = opt.Sweep("sma_cross", sets, model, fixed={})
    runs = opt.evaluate(Feed.of(bars, news), sweep, jobs=2)
    assert [r.params for r in runs] == sets
    checked = 0
    for run in runs:
        if run.params["fast"] >= run.params["slow"]:
            assert run.metrics is None and "fast < slow" in run.error
            continue
        spec = StrategySpec("sma_cross", dict(run.params))
        single = run_inprocess(BacktestRequest((spec,), model), bars, news, keep_bars=False)
        assert run.metrics == single.metrics, run.params
        checked += 1
    assert checked == 7
    assert len({r.metrics["equity_final"] for r in runs if r.metrics}) > 3  # sets differ
    best = opt.ranked(runs, "sharpe")[0]
    values = [opt.metric_of(r, "sharpe") for r in runs]
    assert opt.metric_of(best, "sharpe") == max(v for v in values if v is not None)


def test_the_best_sma_pair_on_goog_is_backtesting_py_s() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = Backtest(GOOG, SmaCross, cash=10_000, commission=0.002).optimize(
            n1=range(5, 35, 5),
            n2=range(20, 110, 10),
            constraint=lambda p: p.n1 < p.n2,
            maximize="Return [%]",
        )
    grid = opt.parse_grid(["fast=5:30:5", "slow=20:100:10"])
    sets = opt.candidates(grid, Expression.parse("fast < slow", grid))
    model = ExecutionModel(cash=10_000, commission=0.002, mode=Mode.REVERSE)
    runs = opt.ranked(opt.evaluate(Feed.of(_goog_bars()), opt.Sweep("sma_cross", sets, model),
                                   jobs=2), "return_pct")  # fmt: skip
    best = runs[0]
    print(f"\nbacktesting.py: n1={theirs._strategy.n1} n2={theirs._strategy.n2} "
          f"{theirs['Return [%]']:.6f} %; flinktrade: {best.params} {best.metrics['return_pct']:.6f} %")  # fmt: skip
    assert best.params == {"fast": theirs._strategy.n1, "slow": theirs._strategy.n2}
    assert opt.metric_of(best, "return_pct") == pytest.approx(theirs["Return [%]"], rel=1e-9)


def test_walk_forward_optimises_in_sample_and_trades_out_of_sample() -> None:
    bars, _news = simulated_market(symbols=3, minutes=240, seed=9)
    model = ExecutionModel(cash=9_000, mode=Mode.REVERSE)
    sets = opt.candidates(opt.parse_grid(["fast=2:6:2", "slow=10:30:10"]))
    sweep = opt.Sweep("sma_cross", sets, model)
    feed = Feed.of(bars)
    walk = opt.walk_forward(feed, sweep, 3, "return_pct", jobs=2)
    stamps = sorted({b.ts for b in bars})
    assert [s.in_start for s in walk.steps] == [stamps[0], stamps[60], stamps[120]]
    assert [s.out_start for s in walk.steps] == [stamps[60], stamps[120], stamps[180]]
    cash = model.cash
    for step in walk.steps:
        window = [b for b in bars if step.in_start <= b.ts < step.in_end]
        singles = {}
        for p in sets:
            request = BacktestRequest((StrategySpec("sma_cross", dict(p)),), model)
            single = run_inprocess(request, window, keep_bars=False)
            singles[tuple(p.items())] = single.metrics["return_pct"]
        best = max(singles.values())
        assert step.in_metric == best
        assert singles[tuple(step.params.items())] == best
        assert step.out is not None and step.out.metrics is not None
        assert step.out.equity[0].ts == step.out_start
        assert step.out.metrics["equity_start"] == cash
        cash = step.out.metrics["equity_final"]
    assert walk.equity[-1].equity == cash
    assert walk.return_pct == pytest.approx((cash / model.cash - 1) * 100)
    times = [p.ts for p in walk.equity]
    assert times == sorted(times) and times[0] == stamps[60]


def _write_csv(path: Path, bars: list[events.Bar]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["timestamp", "symbol", "open", "high", "low", "close", "volume"])
        for b in bars:
            writer.writerow([b.ts, b.symbol, b.open, b.high, b.low, b.close, b.volume])


def _optimize(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"}
    return run_flinktrade("optimize", *args, env=env, cwd=cwd, timeout=600, script=True)


def test_the_command_is_deterministic_whatever_the_workers(tmp_path: Path) -> None:
    bars, _news = simulated_market(symbols=20, minutes=100, seed=2)
    data = tmp_path / "bars.csv"
    _write_csv(data, bars)
    common = ["--bars-csv", str(data), "--grid", "fast=3:9:3", "--grid", "slow=10:30:10",
              "--where", "fast < slow", "--metric", "return_pct", "--walk-forward", "2",
              "--cash", "20000", "--mode", "reverse", "--json"]  # fmt: skip
    first = _optimize([*common, "--out", "a", "--jobs", "2"], tmp_path)
    second = _optimize([*common, "--out", "b", "--jobs", "2"], tmp_path)
    third = _optimize([*common, "--out", "c", "--jobs", "1"], tmp_path)
    for done in (first, second, third):
        assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["runs"] == 9 and summary["metric"] == "return_pct"
    assert set(summary["best_params"]) == {"fast", "slow"}
    with (tmp_path / "a" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9 and rows[0]["rank"] == "1"
    assert float(rows[0]["return_pct"]) == pytest.approx(summary["best_metric"])
    assert {"fast": int(rows[0]["fast"]), "slow": int(rows[0]["slow"])} == summary["best_params"]
    returns = [float(r["return_pct"]) for r in rows]
    assert returns == sorted(returns, reverse=True)
    names = ("results.csv", "optimize.html", "walk_forward.csv")
    for name in names:
        data_a = (tmp_path / "a" / name).read_bytes()
        assert data_a == (tmp_path / "b" / name).read_bytes(), name
        assert data_a == (tmp_path / "c" / name).read_bytes(), name
    page = (tmp_path / "a" / "optimize.html").read_text()
    assert page.count("data:image/png;base64,") == 2  # heatmap, walk-forward equity
    assert "Walk-forward" in page and "ETA" not in first.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--grid", "fast=1:2"], "start:stop:step"),
        (["--grid", "fast=5:30:5", "--where", "fast < nope"], "unknown name 'nope'"),
        (["--grid", "fast=5:30:5", "--metric", "luck"], "--metric must be one of"),
        (["--grid", "fast=5:30:5", "--heatmap", "fast,slow"], "--heatmap"),
        (["--grid", "fast=5:30:5", "--param", "fast=3"], "both in --param and in --grid"),
        (["--grid", "fast=30:40:5", "--param", "slow=20"], "every parameter set failed"),
    ],
)
def test_bad_arguments_exit_2_with_one_error_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    csv_path = tmp_path / "goog.csv"
    GOOG.head(60).to_csv(csv_path)
    result = _optimize(["--bars-csv", str(csv_path), "--jobs", "1", *args], tmp_path)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.stderr


def test_walk_forward_on_a_simulated_market_is_deterministic_and_brute_forced(
    tmp_path: Path,
) -> None:
    """``--simulate 20x120`` (the CLI's simulated market, ``backtest.simulated``) on shared cash:
    two runs give byte-identical files, every set's return is a single backtest's, and each
    walk-forward step picked the best set of single backtests on its in-sample window."""
    common = ["--simulate", "20x120", "--grid", "fast=3:9:3", "--grid", "slow=12:24:12",
              "--where", "fast < slow", "--metric", "return_pct", "--walk-forward", "2",
              "--cash", "20000", "--commission", "0.0005", "--mode", "reverse",
              "--cash-mode", "shared", "--jobs", "2", "--json"]  # fmt: skip
    first = _optimize([*common, "--out", "a"], tmp_path)
    second = _optimize([*common, "--out", "b"], tmp_path)
    for done in (first, second):
        assert done.returncode == 0, done.stderr[-2000:]
    for name in ("results.csv", "optimize.html", "walk_forward.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    page = (tmp_path / "a" / "optimize.html").read_text()
    assert "simulated 20 symbols x 120 minutes (seed 11)" in page

    bars, news = simulated_market(symbols=20, minutes=120)  # what --simulate 20x120 builds
    assert len({b.symbol for b in bars}) == 20
    model = ExecutionModel(cash=20_000, commission=0.0005, mode=Mode.REVERSE,
                           cash_mode=CashMode.SHARED)  # fmt: skip

    def single(params: dict[str, int], start: int = 0, end: int = 2**62) -> float:
        request = BacktestRequest((StrategySpec("sma_cross", params),), model)
        chosen = [b for b in bars if start <= b.ts < end]
        stories = [n for n in news if start <= n.ts < end]
        return float(run_inprocess(request, chosen, stories, keep_bars=False).metrics["return_pct"])

    sets = [{"fast": f, "slow": s} for f in (3, 6, 9) for s in (12, 24)]
    with (tmp_path / "a" / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(sets) == 6
    brute = {(p["fast"], p["slow"]): single(p) for p in sets}
    for row in rows:
        key = (int(row["fast"]), int(row["slow"]))
        assert float(row["return_pct"]) == pytest.approx(brute[key], abs=1e-6), key
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["best_metric"] == pytest.approx(max(brute.values()))

    with (tmp_path / "a" / "walk_forward.csv").open() as handle:
        steps = list(csv.DictReader(handle))
    assert [s["step"] for s in steps] == ["1", "2"]
    for step in steps:
        start, end = _ms(step["in_start"]), _ms(step["in_end"])
        in_sample = {(p["fast"], p["slow"]): single(p, start, end) for p in sets}
        params = dict(part.split("=") for part in step["params"].split())
        picked = (int(params["fast"]), int(params["slow"]))
        assert in_sample[picked] == max(in_sample.values()), step
        assert float(step["in_metric"]) == pytest.approx(max(in_sample.values()), abs=1e-6)
        assert step["out_return_pct"] != ""


def _ms(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)
