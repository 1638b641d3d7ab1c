"""Backtest throughput: flinktrade's backtest engines against backtrader on the same generated bars.

    .venv/bin/python -m bench.backtest [--workloads today,backtrader] [--no-flink] [--quick]
    .venv/bin/python -m bench.backtest --baseline /tmp/base --pairs 3 [--symbols 50 --bars 1950]

Two workloads of one-minute bars (a seeded log-random walk): ``today`` is 50 symbols x 5 days x
390 minutes (97,500 bars); ``backtrader`` is backtrader's own published benchmark size, 100
symbols x 20,000 bars (2,000,000 bars). On each, an SMA(20, 50) crossover runs

- in flinktrade's in-process engine (``backtest.inprocess``: the job's per-bar core, the
  portfolio simulation and the metrics),
- the same with one worker process per core (``inprocess-workers``: ``flinktrade backtest
  --jobs 0``, the replay split by symbol; the same outputs; backtrader has no such mode for one
  run, so its ratio is reported beside, ``ratio_wall_workers``), and
- in backtrader (one ``Cerebro`` per symbol),

each in a fresh child process, so the wall clock includes interpreter start-up and imports. The
bars are generated in the child before its clock starts (numpy, the same seed for both); turning
them into each framework's input (the engine's column input ``backtest.columns.BarColumns``, a
pandas feed) is timed. One JSON line per contender and workload: wall seconds, CPU seconds (the
machine may be shared: CPU time is the steadier figure), bars/s by both, peak RSS, and for
flinktrade the split of its time (``split_s``) between the per-bar core (``SymbolModel.on_bar``,
timed at every call by the monotonic clock), its input (``input_bars``: taking the frames'
columns), the rest of the engine (reading the rows, validated as ``events.Bar`` would, into the
model's items, and everything around the model; these three in wall seconds: the process CPU
clock is a system call that would add ~1.5 us to every bar measured), and the simulation with
metrics (CPU seconds). Then one line per workload with the ratios.

With ``--flink`` (default on for ``today``) the production Flink engine also runs the ``today``
workload (a local Kafka broker started for it, the bounded job, the simulation), as before the
in-process engine existed. ``--quick`` runs both workloads at a small size (5 x 390 and
10 x 2,000 bars) without the Flink engine: the smoke test's size, not a measurement. Progress
goes to stderr.

The children run with a bytecode cache (``PYCACHE``) and each contender once untimed first (a
small warm-up), so neither pays for compiling its imports in the timed run.

A/B of a change: ``--baseline DIR [--pairs N] [--symbols S --bars B]`` runs the in-process
contender of this checkout and of ``DIR`` (another checkout, e.g. ``git worktree add /tmp/base
main``) in ``N`` interleaved pairs and prints each run and the CPU seconds of each side.

Profiling (where the time goes, not a figure): ``python -m bench.backtest --child inprocess
--symbols 20 --bars 2000 --profile backtest.prof`` runs one contender under cProfile and writes its
statistics; under ``valgrind --tool=callgrind`` the same child gives instruction counts, which do
not depend on the machine's load (``docs/backtest.md``, "Speed").
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

MINUTE = 60_000
DAY = 86_400_000
START = 1_704_205_800_000  # 2024-01-02 14:30 UTC
FAST, SLOW = 20, 50
WORKLOADS = {"today": (50, 5 * 390), "backtrader": (100, 20_000)}
"""name -> (symbols, bars per symbol)."""
WORKERS = "inprocess-workers"
"""The in-process engine with one worker process per core (``flinktrade backtest --jobs 0``):
backtrader has no such mode for one run, so its ratio is reported beside the one-process one."""
QUICK = {"today": (5, 390), "backtrader": (10, 2_000)}
"""``--quick``: the same workloads, small."""

log = logging.getLogger("bench.backtest")


def generate(symbols: int, bars: int, seed: int = 7) -> dict[str, pd.DataFrame]:
    """Per symbol, ``bars`` one-minute OHLCV bars in market hours (prices rounded to cents)."""
    rng = np.random.default_rng(seed)
    days = -(-bars // 390)
    stamps = np.array(
        [START + d * DAY + m * MINUTE for d in range(days) for m in range(390)][:bars],
        dtype=np.int64,
    )
    out = {}
    for i in range(symbols):
        n = len(stamps)
        close = 50 + 100 * rng.random() * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
        open_ = np.concatenate([[close[0]], close[:-1]]) * (1 + rng.normal(0, 0.0002, n))
        high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0, 0.0005, n)))
        low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.0005, n)))
        frame = pd.DataFrame(
            {
                "open": np.round(open_, 2),
                "high": np.round(high, 2),
                "low": np.round(low, 2),
                "close": np.round(close, 2),
                "volume": rng.integers(100, 10_000, n),
            },
            index=pd.to_datetime(stamps, unit="ms"),
        )
        frame["high"] = frame[["open", "high", "close"]].max(axis=1)
        frame["low"] = frame[["open", "low", "close"]].min(axis=1)
        out[f"S{i:03d}"] = frame
    return out


def symbol_bars(symbol: str, frame: pd.DataFrame) -> Iterator[Any]:
    """One symbol's bars as ``events.Bar``, made one at a time (never all in memory), from the
    frame's columns (``backtest.columns``: the validated construction's bars, built faster)."""
    return symbol_columns(symbol, frame).bars()


def symbol_columns(symbol: str, frame: pd.DataFrame) -> Any:
    """One symbol's bars as the in-process engine's column input (``backtest.columns.BarColumns``:
    the rows of ``symbol_bars`` without an ``events.Bar`` each)."""
    from flinktrade.backtest.columns import BarColumns

    stamps = frame.index.asi8 // 1_000_000
    return BarColumns.of(
        symbol, stamps, frame.open.to_numpy(), frame.high.to_numpy(), frame.low.to_numpy(),
        frame.close.to_numpy(), frame.volume.to_numpy(),
    )  # fmt: skip


def to_bars(frames: dict[str, pd.DataFrame]) -> list[Any]:
    """Every bar of every symbol, in time order (the Flink engine's input)."""
    bars = [bar for symbol, frame in frames.items() for bar in symbol_bars(symbol, frame)]
    bars.sort(key=lambda b: (b.ts, b.symbol))
    return bars


# -- contenders (each in its own child process) ---------------------------------------------------


class _TimedModel:
    """``model`` with its ``on_bar`` timed into ``into[0]`` (see ``_timed``)."""

    def __init__(self, model: Any, into: list[float]) -> None:
        self._model = model
        self.on_bar = _timed(model.on_bar, into)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _timed(fn: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
    """``fn``, its time added to ``into[0]`` at every call, by the monotonic clock (a vDSO read,
    ~0.05 us; the process CPU clock is a system call, ~0.6 us, and two per bar added ~1.5 us to
    every bar the timed run measured). Wall time inside one busy single-threaded child is its CPU
    time on an idle core; on a shared machine the parts can include time it waited."""
    clock = time.perf_counter

    def wrapper(*args: Any) -> Any:
        started = clock()
        try:
            return fn(*args)
        finally:
            into[0] += clock() - started

    return wrapper


def run_workers(frames: dict[str, pd.DataFrame], split: bool = False) -> dict[str, Any]:
    """The in-process contender with one worker process per core (``--jobs 0``), no split."""
    return run_inprocess(frames, split=False, jobs=os.cpu_count() or 1)


def run_inprocess(
    frames: dict[str, pd.DataFrame], split: bool = True, jobs: int = 1
) -> dict[str, Any]:
    """The in-process contender (``split``: time its parts, as ``split_s``: the replay's parts
    by the monotonic clock, the simulation and metrics by the process CPU clock; ``jobs``: its
    replay in that many worker processes)."""
    from flinktrade.backtest import BacktestRequest, ExecutionModel
    from flinktrade.backtest.engine import fewer_collections, finish
    from flinktrade.backtest.inprocess import Feed, replay
    from flinktrade.config import AnalyticsSettings
    from flinktrade.pipeline.analytics import StrategySpec, SymbolModel

    request = BacktestRequest(
        strategies=(StrategySpec("sma_cross", {"fast": FAST, "slow": SLOW}),),
        model=ExecutionModel(cash=1_000_000.0),
        analytics=AnalyticsSettings(alerts=False),
    )
    wall = time.perf_counter()
    core, building = [0.0], [0.0]
    model = SymbolModel(request.strategies, request.analytics)
    started = time.perf_counter()
    feed = Feed.of({symbol: symbol_columns(symbol, frame) for symbol, frame in frames.items()})
    building[0] = time.perf_counter() - started
    if split:  # the model's class is compiled in the mypyc build: wrap it, do not patch it
        model = cast(SymbolModel, _TimedModel(model, core))
    with fewer_collections():  # as run_inprocess
        out = replay(model, feed, jobs=jobs, simulate=request.model)
        replayed, replayed_wall = time.process_time(), time.perf_counter()
        result = finish(
            "bench",
            request,
            priced=out.priced,
            report_bars={},
            signals=out.signals,
            alerts=out.alerts,
            deadletters=[],
            timings={},
            started=time.monotonic(),
            sleeves=out.sleeves,
        )
        done = time.process_time()
    if not split:
        return {"signals": len(result.signals), "trades": result.metrics["trades"], "jobs": jobs}
    return {
        "signals": len(result.signals),
        "trades": result.metrics["trades"],
        "split_s": {  # wall seconds of the replay's parts; CPU seconds of the simulation
            "core": round(core[0], 2),
            "input_bars": round(building[0], 2),
            "engine_rest": round(replayed_wall - wall - core[0] - building[0], 2),
            "simulate_metrics": round(done - replayed, 2),
        },
    }


def run_backtrader(frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    import backtrader as bt

    class Cross(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            fast = bt.ind.SMA(self.data.close, period=FAST)
            slow = bt.ind.SMA(self.data.close, period=SLOW)
            self.cross = bt.ind.CrossOver(fast, slow)
            self.signals = 0

        def next(self) -> None:
            if self.cross[0] > 0:
                self.signals += 1
                if not self.position:
                    self.buy(size=int(self.broker.getcash() // self.data.close[0]))
            elif self.cross[0] < 0:
                self.signals += 1
                if self.position:
                    self.close()

    signals = 0
    for frame in frames.values():
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame))
        cerebro.addstrategy(Cross)
        cerebro.broker.setcash(1_000_000.0 / len(frames))
        [strategy] = cerebro.run()
        signals += strategy.signals
    return {"signals": signals}


def child(contender: str, symbols: int, bars: int, profile: Path | None = None) -> None:
    """Generate the bars (untimed), run one contender, print its JSON line (``profile``: under
    cProfile, its statistics written to that file: for reading, not for the figures)."""
    generated = time.monotonic()
    frames = generate(symbols, bars)
    generate_s = time.monotonic() - generated
    runner = {"inprocess": run_inprocess, WORKERS: run_workers, "backtrader": run_backtrader}[
        contender
    ]
    started = time.monotonic()
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
        args = (frames, False) if contender != "backtrader" else (frames,)  # no timers in it
        outcome = profiler.runcall(runner, *args)
        profiler.dump_stats(profile)
    else:
        outcome = runner(frames)
    outcome.update(generate_s=generate_s, run_s=time.monotonic() - started)
    print(json.dumps(outcome), flush=True)


ROOT = Path(__file__).resolve().parents[1]
PYCACHE = Path(tempfile.gettempdir()) / "flinktrade-bench-pycache"
"""The children's bytecode cache (``PYTHONPYCACHEPREFIX``; it mirrors each source's absolute path,
so two checkouts never share an entry). With ``PYTHONDONTWRITEBYTECODE`` set, as on the dev
machine, every child would otherwise compile every module it imports (about 0.4-0.7 CPU-s for
flinktrade's, more for backtrader's); with it, both contenders pay the same warm start-up."""


def child_env(tree: Path = ROOT) -> dict[str, str]:
    """The environment of a contender's child run from ``tree``: the bytecode cache on, and
    ``tree``'s sources first on the path (a baseline checkout's own ``flinktrade``)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env["PYTHONPATH"] = os.pathsep.join([str(tree / "src"), str(tree)])
    return env


def warm_up(contender: str, tree: Path = ROOT) -> None:
    """One small untimed run of ``contender`` from ``tree``: fills the bytecode cache and the
    page cache, so the measured runs start alike."""
    command = [sys.executable, "-m", "bench.backtest", "--child", contender,
               "--symbols", "1", "--bars", "400"]  # fmt: skip
    subprocess.run(command, cwd=tree, env=child_env(tree), capture_output=True, check=True)


def measure(contender: str, symbols: int, bars: int, tree: Path = ROOT) -> dict[str, Any]:
    """Run a contender in a fresh interpreter (``tree``: the checkout whose code it runs): wall
    clock, CPU time and peak RSS of that child."""
    command = [sys.executable, "-m", "bench.backtest", "--child", contender,
               "--symbols", str(symbols), "--bars", str(bars)]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=tree,
                               env=child_env(tree))  # fmt: skip
    _pid, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    assert process.stdout is not None
    output = process.stdout.read()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{contender} failed with exit code {process.returncode}")
    outcome = json.loads(output.strip().splitlines()[-1])
    cpu = usage.ru_utime + usage.ru_stime
    n = symbols * bars
    wall_ex = wall - outcome["generate_s"]  # start-up included, data generation not
    line = {
        "bench": "backtest",
        "engine": contender,
        "symbols": symbols,
        "bars": n,
        "wall_s": round(wall_ex, 2),
        "cpu_s": round(cpu, 2),
        "bars_per_s": round(n / wall_ex),
        "bars_per_cpu_s": round(n / cpu),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
        "generate_s": round(outcome.pop("generate_s"), 2),
        "cores": os.cpu_count(),
    }
    line.update(outcome)
    line.pop("run_s", None)
    return line


def run_flink(symbols: int, bars: int) -> dict[str, Any]:
    """The production job over a topic of a local broker started for it (as before)."""
    from flinktrade.backtest import BacktestRequest, ExecutionModel, run_backtest
    from flinktrade.config import AnalyticsSettings, BrokerSettings
    from flinktrade.infra.kafka import LocalKafka
    from flinktrade.pipeline.analytics import StrategySpec
    from flinktrade.testing.ports import free_port

    events = to_bars(generate(symbols, bars))
    with tempfile.TemporaryDirectory(prefix="bench-backtest-") as state:
        broker = LocalKafka(
            BrokerSettings(port=free_port(), controller_port=free_port(), heap="1g"), Path(state)
        )
        broker.up()
        try:
            request = BacktestRequest(
                strategies=(StrategySpec("sma_cross", {"fast": FAST, "slow": SLOW}),),
                model=ExecutionModel(cash=1_000_000.0),
                analytics=AnalyticsSettings(alerts=False),
            )
            cpu = resource.getrusage(resource.RUSAGE_SELF)
            started = time.monotonic()
            result = run_backtest(broker.bootstrap_servers, request, bars=events)
            wall = time.monotonic() - started
            after = resource.getrusage(resource.RUSAGE_SELF)
        finally:
            broker.down()
    n = len(events)
    return {
        "bench": "backtest",
        "engine": "flink",
        "symbols": symbols,
        "bars": n,
        "wall_s": round(wall, 2),
        "cpu_s_python": round(
            after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime, 2
        ),  # this process only: the JVM's threads count here, the broker's do not
        "bars_per_s": round(n / wall),
        "job_s": round(result.timings["job_s"], 2),
        "signals": len(result.signals),
        "trades": result.metrics["trades"],
        "cores": os.cpu_count(),
    }


def compare(baseline: Path, symbols: int, bars: int, pairs: int) -> dict[str, Any]:
    """The in-process contender of this checkout against ``baseline``'s (another checkout, e.g.
    ``git worktree add /tmp/base main``) in ``pairs`` interleaved pairs, each pair's order
    alternated, so a change in the machine's load falls on both alike. One JSON line per run, then
    the summary: each side's CPU seconds (every run and the median), and the median's ratio."""
    sides = {"current": ROOT, "baseline": baseline.resolve()}
    for tree in sides.values():
        warm_up("inprocess", tree)
    cpu: dict[str, list[float]] = {side: [] for side in sides}
    for pair in range(pairs):
        order = list(sides) if pair % 2 == 0 else list(reversed(sides))
        for side in order:
            line = measure("inprocess", symbols, bars, sides[side])
            print(json.dumps({"pair": pair, "side": side, **line}), flush=True)
            cpu[side].append(line["cpu_s"])
    medians = {side: statistics.median(runs) for side, runs in cpu.items()}
    return {
        "bench": "backtest_ab",
        "bars": symbols * bars,
        "baseline": str(sides["baseline"]),
        "cpu_s": cpu,
        "median_cpu_s": medians,
        "speedup": round(medians["baseline"] / medians["current"], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", default="today,backtrader")
    parser.add_argument("--flink", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--child", choices=("inprocess", WORKERS, "backtrader"))
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=5 * 390, help="bars per symbol")
    parser.add_argument("--quick", action="store_true", help="small sizes, no Flink (smoke)")
    parser.add_argument("--profile", type=Path, help="with --child: cProfile statistics file")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout: A/B its in-process engine against this one"
    )
    parser.add_argument("--pairs", type=int, default=3, help="with --baseline: interleaved pairs")
    args = parser.parse_args()
    if args.baseline is not None and not (args.baseline / "src" / "flinktrade").is_dir():
        parser.error(f"--baseline {args.baseline}: not a flinktrade checkout (no src/flinktrade)")
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    for noisy in ("py4j", "pyflink", "apache_beam", "flinktrade"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.child:
        child(args.child, args.symbols, args.bars, args.profile)
        return
    if args.baseline is not None:
        print(json.dumps(compare(args.baseline, args.symbols, args.bars, args.pairs)), flush=True)
        return
    for contender in ("inprocess", "backtrader"):
        warm_up(contender)
    for name in args.workloads.split(","):
        symbols, bars = (QUICK if args.quick else WORKLOADS).get(name, (args.symbols, args.bars))
        lines = {}
        for contender in ("inprocess", WORKERS, "backtrader"):
            log.info("%s: %s on %d symbols x %d bars", name, contender, symbols, bars)
            lines[contender] = measure(contender, symbols, bars)
            print(json.dumps({"workload": name, **lines[contender]}), flush=True)
        ours, theirs = lines["inprocess"], lines["backtrader"]
        summary = {
            "bench": "backtest",
            "workload": name,
            "bars": ours["bars"],
            "ratio_wall": round(ours["bars_per_s"] / theirs["bars_per_s"], 2),
            "ratio_cpu": round(ours["bars_per_cpu_s"] / theirs["bars_per_cpu_s"], 2),
            # the same engine with one worker process per core (``backtest --jobs 0``)
            "ratio_wall_workers": round(lines[WORKERS]["bars_per_s"] / theirs["bars_per_s"], 2),
            "ratio_cpu_workers": round(
                lines[WORKERS]["bars_per_cpu_s"] / theirs["bars_per_cpu_s"], 2
            ),
            "inprocess_peak_rss_mb": ours["peak_rss_mb"],
            "signals": {"inprocess": ours["signals"], "backtrader": theirs["signals"]},
        }
        print(json.dumps(summary), flush=True)
        if name == "today" and args.flink and not args.quick:
            log.info("%s: flink engine", name)
            flink = run_flink(symbols, bars)
            flink["ratio_wall_vs_backtrader"] = round(flink["bars_per_s"] / theirs["bars_per_s"], 3)
            print(json.dumps({"workload": name, **flink}), flush=True)


if __name__ == "__main__":
    main()
