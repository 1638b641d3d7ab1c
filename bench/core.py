"""The per-bar analytics core alone: ``SymbolModel.on_bar`` in-process, CPU time per bar.

    .venv/bin/python -m bench.core [--symbols 20] [--bars 1000] [--repeats 5]

Generates ``symbols`` x ``bars`` one-minute bars (a seeded log-random walk in cents, volumes with
occasional spikes, a scored news story every ~30 bars per symbol) and feeds them, symbol after
symbol interleaved bar by bar, to one ``SymbolModel`` with the default indicator set, the bar
alerts on and the four built-in strategies (defaults). Each run builds a fresh model and fresh
states; the figure is CPU time (``time.process_time``: the machine is shared, wall time is noise)
divided by the number of bars, the median of ``repeats`` runs (min and max beside it). A warm-up
run is discarded. The news calls are inside the timed loop (one per ~30 bars). ``compiled`` in
the output lists the modules that ran compiled by mypyc (``FLINKTRADE_PURE_PYTHON=1``: none).

Prints two JSON lines:

    {"contender": "core", "us_per_bar": ..., ...}          on_bar alone, and with every output
                                                            encoded to its wire bytes as the Flink
                                                            operator does (``us_per_bar_encoded``),
                                                            and with each bar's state written as
                                                            the operator writes a state to Flink
                                                            state: its snapshot, pickled
                                                            (``us_per_bar_state``; the job's
                                                            operator writes a symbol's state once
                                                            per checkpoint: in a live minute, once
                                                            per bar)
    {"contender": "core-scaling", "us_per_bar": {"1": ..., "4": ..., "16": ...}, ...}
                                                            the same with 1, 4 and 16 strategy
                                                            instances (the built-ins in turn,
                                                            distinct names, same indicators)

``--split`` prints instead where a bar's time goes (``"contender": "core-split"``): the
indicators alone (``IndicatorEngine.advance`` with the bar's float conversions), the model without
strategies, with four strategies that do nothing (the dispatch and ``BarView``) and with the four
built-ins. ``--against SRC`` is an A/B comparison on a shared machine: ``PAIRS`` pairs of runs,
alternately of this checkout and of the ``src`` directory ``SRC`` of another one (its compiled
build included when it has a current one), each in a fresh process; one JSON line
(``"contender": "core-ab"``) with the medians of both and their ratio.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import platform
import random
import statistics
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from flinktrade import accel, events
from flinktrade.config import AnalyticsSettings
from flinktrade.pipeline.analytics import ClosedBar, ScoredNews, StrategySpec, SymbolModel

T0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC
MINUTE = 60_000
BUILTINS = ("sma_cross", "rsi_reversion", "bollinger_breakout", "sentiment_momentum")

Item = ClosedBar | ScoredNews


def workload(symbols: int, bars: int, seed: int = 16) -> list[Item]:
    """Bars and news in event-time order, symbols interleaved bar by bar."""
    rng = random.Random(seed)
    series: list[list[Item]] = []
    for s in range(symbols):
        symbol = f"S{s:03d}"
        price = 20 + 200 * rng.random()
        items: list[Item] = []
        for i in range(bars):
            ts = T0 + i * MINUTE
            if rng.random() < 1 / 30:
                score = max(-1.0, min(1.0, rng.gauss(0, 0.5)))
                items.append(ScoredNews(f"{symbol}-{i}", symbol, ts + 1, score, "a story"))
            open_ = price * math.exp(rng.gauss(0, 0.0005))
            price *= math.exp(rng.gauss(0, 0.002) * (8 if rng.random() < 0.005 else 1))
            o, c = Decimal(f"{open_:.2f}"), Decimal(f"{price:.2f}")
            h = max(o, c) + Decimal(f"{abs(rng.gauss(0, 0.0005)) * price:.2f}")
            low = max(
                Decimal("0.01"), min(o, c) - Decimal(f"{abs(rng.gauss(0, 0.0005)) * price:.2f}")
            )
            volume = rng.randint(100, 10_000) * (12 if rng.random() < 0.01 else 1)
            vwap = None if rng.random() < 0.1 else float((o + c) / 2)
            items.append(ClosedBar(symbol, ts, o, h, low, c, volume, vwap, rng.randint(1, 90)))
        series.append(items)
    merged = [item for items in series for item in items]
    merged.sort(key=lambda x: x.ts)  # stable: per-symbol order kept
    return merged


def specs(instances: int) -> tuple[StrategySpec, ...]:
    return tuple(
        StrategySpec(BUILTINS[i % 4], {"name": f"{BUILTINS[i % 4]}_{i}"}) for i in range(instances)
    )


def _encode_all(out: list[Any]) -> None:
    for event in out:
        events.encode(event)


def run_once(
    items: list[Item], instances: int, encode: bool, write_state: bool = False
) -> tuple[float, int, int]:
    """CPU seconds, bars, outputs of one pass over ``items`` with a fresh model (``write_state``:
    each bar's state snapshot pickled too, as the job's operator writes a state)."""
    model = SymbolModel(specs(instances), AnalyticsSettings())
    states: dict[str, dict[str, Any]] = {}
    sink: Callable[[list[Any]], None] = _encode_all if encode else (lambda out: None)
    snapshot = model.snapshot
    bars = outputs = 0
    started = time.process_time()
    for item in items:
        state = states.get(item.symbol)
        if state is None:
            state = states[item.symbol] = model.initial_state()
        if isinstance(item, ClosedBar):
            out = model.on_bar(state, item)
            bars += 1
            if write_state:
                pickle.dumps(snapshot(state))
        else:
            out = model.on_news(state, item)
        outputs += len(out)
        sink(out)
    return time.process_time() - started, bars, outputs


def measure(
    items: list[Item], instances: int, encode: bool, repeats: int, write_state: bool = False
) -> dict[str, Any]:
    run_once(items, instances, encode, write_state)  # warm-up, discarded
    per_bar = []
    outputs = bars = 0
    for _ in range(repeats):
        cpu, bars, outputs = run_once(items, instances, encode, write_state)
        per_bar.append(cpu / bars * 1e6)
    return {
        "median": round(statistics.median(per_bar), 2),
        "min": round(min(per_bar), 2),
        "max": round(max(per_bar), 2),
        "bars": bars,
        "outputs": outputs,
    }


class _Idle:
    """A strategy that reads nothing and never trades: what remains is the dispatch's cost."""

    def __init__(self, name: str) -> None:
        self.name = name

    def indicators(self) -> set[str]:
        return set()

    def initial_state(self) -> dict[str, Any]:
        return {}

    def on_bar(self, bar: Any, state: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        return [], state


def _model_pass(model: SymbolModel, bars: list[ClosedBar]) -> float:
    """CPU us per bar of one pass of ``model.on_bar`` over ``bars`` (fresh states)."""
    states: dict[str, dict[str, Any]] = {}
    started = time.process_time()
    for bar in bars:
        state = states.get(bar.symbol)
        if state is None:
            state = states[bar.symbol] = model.initial_state()
        model.on_bar(state, bar)
    return (time.process_time() - started) / len(bars) * 1e6


def _indicator_pass(model: SymbolModel, bars: list[ClosedBar]) -> float:
    """CPU us per bar of the indicators alone, with the conversions ``on_bar`` makes for them."""
    engine = model.engine
    states: dict[str, Any] = {}
    started = time.process_time()
    for bar in bars:
        state = states.get(bar.symbol)
        if state is None:
            state = states[bar.symbol] = engine.start()
        engine.advance(
            state, float(bar.high), float(bar.low), float(bar.close), float(bar.volume), bar.vwap
        )
    return (time.process_time() - started) / len(bars) * 1e6


def split(items: list[Item], repeats: int) -> dict[str, float]:
    """Median CPU us per bar of each part (news left out: the model's bar path only)."""
    bars = [item for item in items if isinstance(item, ClosedBar)]
    builtins = SymbolModel(specs(4), AnalyticsSettings())
    idle = SymbolModel(specs(4), AnalyticsSettings())  # the same indicator set as the built-ins
    idle._runs = [(f"idle_{i}", _Idle(f"idle_{i}"), frozenset(), ()) for i in range(4)]
    none = SymbolModel(specs(4), AnalyticsSettings())
    none._runs = []
    passes: dict[str, Callable[[], float]] = {
        "indicators": lambda: _indicator_pass(builtins, bars),
        "model, no strategy": lambda: _model_pass(none, bars),
        "model, 4 idle strategies": lambda: _model_pass(idle, bars),
        "model, 4 built-ins": lambda: _model_pass(builtins, bars),
    }
    figures: dict[str, list[float]] = {name: [] for name in passes}
    for run in passes.values():
        run()  # warm-up, discarded
    for _ in range(repeats):  # the parts alternate, so a change of load hits them alike
        for name, run in passes.items():
            figures[name].append(run())
    return {name: round(statistics.median(values), 2) for name, values in figures.items()}


_AB_RUN = """
import json, sys
from bench.core import run_once, workload
symbols, bars, repeats = map(int, sys.argv[1:4])
items = workload(symbols, bars)
run_once(items, 4, False)
runs = sorted(run_once(items, 4, False) for _ in range(repeats))
cpu, n, _ = runs[len(runs) // 2]
print(json.dumps(cpu / n * 1e6))
"""


def against(src: str, pairs: int, symbols: int, bars: int, repeats: int) -> dict[str, Any]:
    """``pairs`` alternating runs of this checkout (B) and of ``src`` (A), each in a new process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    here = Path(__file__).resolve().parent.parent
    trees = {"A": str(Path(src).resolve()), "B": str(here / "src")}
    figures: dict[str, list[float]] = {"A": [], "B": []}
    for i in range(pairs):
        for side in ("A", "B") if i % 2 == 0 else ("B", "A"):
            env = {**os.environ, "PYTHONPATH": os.pathsep.join((trees[side], str(here)))}
            done = subprocess.run(
                [sys.executable, "-c", _AB_RUN, str(symbols), str(bars), str(repeats)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            )
            figures[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
    a, b = statistics.median(figures["A"]), statistics.median(figures["B"])
    return {
        "contender": "core-ab",
        "against": trees["A"],
        "us_per_bar": {"against": round(a, 2), "this": round(b, 2)},
        "ratio": round(a / b, 3),
        "runs": {k: [round(v, 2) for v in vs] for k, vs in figures.items()},
        "pairs": pairs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=20)
    parser.add_argument("--bars", type=int, default=1000, help="bars per symbol")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="the core line only")
    parser.add_argument("--split", action="store_true", help="where a bar's time goes")
    parser.add_argument("--against", metavar="SRC", help="A/B against another checkout's src/")
    parser.add_argument("--pairs", type=int, default=5, help="A/B pairs (with --against)")
    args = parser.parse_args()
    if args.against:
        line = against(args.against, args.pairs, args.symbols, args.bars, args.repeats)
        print(json.dumps(line), flush=True)
        return
    items = workload(args.symbols, args.bars)
    common = {
        "clock": "process_time",
        "repeats": args.repeats,
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores",
        "date": time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime()),
        # the modules mypyc compiled that this run imported ([]: the Python source throughout)
        "compiled": accel.status()["loaded"],
    }
    if args.split:
        parts = split(items, args.repeats)
        print(json.dumps({"contender": "core-split", "us_per_bar": parts, **common}), flush=True)
        return
    core = measure(items, 4, False, args.repeats)
    encoded = measure(items, 4, True, args.repeats)
    with_state = measure(items, 4, False, args.repeats, write_state=True)
    print(
        json.dumps(
            {
                "contender": "core",
                "us_per_bar": core["median"],
                "us_per_bar_min": core["min"],
                "us_per_bar_max": core["max"],
                "us_per_bar_encoded": encoded["median"],
                "us_per_bar_state": with_state["median"],
                "bars": core["bars"],
                "outputs": core["outputs"],
                "strategies": 4,
                **common,
            }
        ),
        flush=True,
    )
    if args.quick:
        return
    scaling = {str(n): measure(items, n, False, args.repeats) for n in (1, 4, 16)}
    print(
        json.dumps(
            {
                "contender": "core-scaling",
                "us_per_bar": {n: m["median"] for n, m in scaling.items()},
                "us_per_bar_min": {n: m["min"] for n, m in scaling.items()},
                "us_per_bar_max": {n: m["max"] for n, m in scaling.items()},
                "bars": core["bars"],
                **common,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
