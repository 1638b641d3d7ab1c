"""A/B of a backtest's inputs: ``flinktrade backtest`` on a Parquet file and on ``--simulate``,
this checkout against another one, in interleaved pairs.

    .venv/bin/python -m bench.inputs --baseline /tmp/base [--pairs 3] [--symbols 20 --bars 1950]
        [--simulate 20x390] [--inputs parquet,simulate] [--scope command|input]

Each run is the whole command in a fresh interpreter (start-up, reading or simulating the input,
the in-process engine, the report), from its checkout's own sources (``bench.backtest.child_env``:
that checkout's ``src`` first on the path, the bytecode cache on), in a temporary working
directory, after one untimed run of each side; with ``--scope input``, the command's input call
alone (``load_file`` or ``SimulatedMarket.build``), timed inside such an interpreter. The Parquet
file holds ``bench.backtest.generate``'s bars (one-minute, prices in cents; a time, a symbol and
the OHLCV columns), written once and read by both sides. One JSON line per run (CPU seconds, user
+ system), then one per input with each side's runs, their medians and the ratio baseline /
current. Each pair's order alternates, so a change in the machine's load falls on both sides
alike: compare pairs, not runs. The baseline needs the same compiled core as this checkout
(``make setup`` there, or a copy of ``src/flinktrade/_mypyc`` when ``indicators`` did not
change), else it runs slower for that reason alone.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from bench.backtest import ROOT, child_env, generate


def write_parquet(path: Path, symbols: int, bars: int) -> int:
    """``generate``'s bars as one Parquet file (time, symbol, open ... volume); the bar count."""
    frames = [
        frame.rename_axis("time").reset_index().assign(symbol=symbol)
        for symbol, frame in generate(symbols, bars).items()
    ]
    table = pd.concat(frames, ignore_index=True)
    table["time"] = table["time"].dt.tz_localize("UTC")
    table.to_parquet(path)
    return len(table)


INPUT_ONLY = """
import sys, time
from pathlib import Path
kind, value = sys.argv[1:3]
if kind == "--parquet":
    from flinktrade.backtest.loading import load_file
    started = time.process_time()
    count = len(load_file(Path(value)).bars)
else:
    from flinktrade.backtest.simulated import SimulatedMarket
    started = time.process_time()
    count = len(SimulatedMarket.parse(value).build()[0])
print(time.process_time() - started, count)
"""
"""``--scope input``'s child: the input alone (the command's own calls), its CPU seconds printed."""


def run(tree: Path, args: list[str], scope: str = "command") -> float:
    """CPU seconds of ``flinktrade backtest args...`` run from ``tree``'s sources (``scope``
    ``input``: of reading or simulating its input alone, in the same fresh interpreter)."""
    before = _children_cpu()
    with tempfile.TemporaryDirectory(prefix="bench-inputs-") as work:
        command = [sys.executable, "-m", "flinktrade.cli", "backtest", *args, "--out", work]
        if scope == "input":
            command = [sys.executable, "-c", INPUT_ONLY, *args]
        done = subprocess.run(
            command, cwd=work, env=child_env(tree), capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{tree}: {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        if scope == "input":
            return float(done.stdout.split()[0])
    return _children_cpu() - before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def compare(
    baseline: Path, inputs: dict[str, list[str]], pairs: int, scope: str
) -> list[dict[str, Any]]:
    """Per input, ``pairs`` interleaved pairs of runs of this checkout and ``baseline``."""
    sides = {"current": ROOT, "baseline": baseline.resolve()}
    summaries = []
    for name, args in inputs.items():
        for tree in sides.values():
            run(tree, args, scope)  # warm-up: the bytecode and page caches
        cpu: dict[str, list[float]] = {side: [] for side in sides}
        for pair in range(pairs):
            order = list(sides) if pair % 2 == 0 else list(reversed(sides))
            for side in order:
                seconds = run(sides[side], args, scope)
                cpu[side].append(round(seconds, 2))
                line = {"input": name, "pair": pair, "side": side, "cpu_s": round(seconds, 2)}
                print(json.dumps(line), flush=True)
        medians = {side: statistics.median(runs) for side, runs in cpu.items()}
        summaries.append({
            "bench": "inputs_ab", "input": name, "scope": scope, "args": args, "cpu_s": cpu,
            "median_cpu_s": medians, "speedup": round(medians["baseline"] / medians["current"], 2),
        })  # fmt: skip
    return summaries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=20, help="Parquet file: symbols")
    parser.add_argument("--bars", type=int, default=1950, help="Parquet file: bars per symbol")
    parser.add_argument("--simulate", default="20x390", help="--simulate SYMBOLSxMINUTES")
    parser.add_argument("--inputs", default="parquet,simulate")
    parser.add_argument(
        "--scope", choices=("command", "input"), default="command",
        help="the whole command, or reading / simulating the input alone",
    )  # fmt: skip
    args = parser.parse_args()
    if not (args.baseline / "src" / "flinktrade").is_dir():
        parser.error(f"--baseline {args.baseline}: not a flinktrade checkout (no src/flinktrade)")
    chosen = [name.strip() for name in args.inputs.split(",") if name.strip()]
    if not chosen or set(chosen) - {"parquet", "simulate"}:
        parser.error(f"--inputs {args.inputs!r}: parquet, simulate or both")
    with tempfile.TemporaryDirectory(prefix="bench-inputs-") as work:
        path = Path(work) / "bars.parquet"
        inputs = {
            "parquet": ["--parquet", str(path)],
            "simulate": ["--simulate", args.simulate],
        }
        if "parquet" in chosen:
            count = write_parquet(path, args.symbols, args.bars)
            print(json.dumps({"parquet_bars": count}), flush=True)
        for summary in compare(
            args.baseline, {k: inputs[k] for k in chosen}, args.pairs, args.scope
        ):
            print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
