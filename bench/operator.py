"""The job's bundled analytics operator alone: its Python per bar, in-process, no Flink.

    .venv/bin/python -m bench.operator [--symbols 500] [--minutes 30] [--repeats 3]
                                       [--pairs N --against SRC]

Feeds ``BundledBarOperator`` (the operator of a job whose only input is its trades) one bundle per
minute of ``symbols`` bars, as the job's SQL writes them (one tab-separated line per bar), with the
four built-in strategies, the default indicators and the bar alerts, after a warm-up of 55
minutes (SMA 50 defined), and a checkpoint marker after every ``--checkpoint-every`` bundles
(default 1: the live case, a checkpoint at least once a minute, so every bar's state is written
once, at the marker; more: a catch-up, many bars per symbol between two checkpoints; 0: none). Its map state pickles each value put, as PyFlink's embedded state does
for ``PICKLED_BYTE_ARRAY``; the timers are a list. What this leaves out is the JVM: the hand-over
of each output row, the sink, the state backend's copy of the bytes.

Prints one JSON line (``"contender": "operator"``): the CPU time per bar (``time.process_time``,
the median of ``repeats`` runs over fresh minutes, min and max beside it; of it, the markers'
state writes: ``us_per_bar_in_markers``), the output rows per bar, and how many garbage collections of each generation a run made. ``--against SRC`` runs
``PAIRS`` pairs of fresh processes, alternately this checkout and the ``src`` directory ``SRC`` of
another one (``git worktree add``; its compiled core is used when current), and prints each run
and the medians (``"contender": "operator-ab"``): the machine is shared, compare pairs.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pickle
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

T0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC
MINUTE = 60_000
WARM_MINUTES = 55
BUILTINS = ("sma_cross", "rsi_reversion", "bollinger_breakout", "sentiment_momentum")


class MapState:
    """A keyed map state as PyFlink's embedded one keeps ``PICKLED_BYTE_ARRAY`` values."""

    def __init__(self) -> None:
        self.values: dict[str, bytes] = {}

    def get(self, key: str) -> Any:
        raw = self.values.get(key)
        return None if raw is None else pickle.loads(raw)  # noqa: S301 (our own bytes)

    def put(self, key: str, value: Any) -> None:
        self.values[key] = pickle.dumps(value)

    def put_all(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            self.values[key] = pickle.dumps(value)

    def items(self) -> list[tuple[str, Any]]:
        return [(key, pickle.loads(raw)) for key, raw in self.values.items()]  # noqa: S301

    def remove(self, key: str) -> None:
        self.values.pop(key, None)


class Runtime:
    def __init__(self) -> None:
        self.maps: dict[str, MapState] = {}

    def get_map_state(self, descriptor: Any) -> MapState:
        return self.maps.setdefault(descriptor.get_name(), MapState())


class Timers:
    watermark = -(2**63)

    def __init__(self) -> None:
        self.timers: set[int] = set()

    def current_watermark(self) -> int:
        return self.watermark

    def register_event_time_timer(self, ts: int) -> None:
        self.timers.add(ts)


class Context:
    def __init__(self) -> None:
        self.timers = Timers()

    def get_current_key(self) -> int:
        return 0

    def timer_service(self) -> Timers:
        return self.timers


def output_rows(row: Any) -> int:
    """How many output rows one yielded row holds: a lot of packed rows (``OUTPUT_LOT_TYPE``, one
    field: the job unpacks it in Java) or one row (a tree from before the lots)."""
    if len(row) != 1:
        return 1
    from flinktrade.pipeline.operator import unpack_outputs

    return len(unpack_outputs(row[0]))


def bundles(symbols: int, minutes: int, seed: int = 12) -> list[str]:
    """One bundle per minute: every symbol's bar, a log-random walk in cents, as the SQL's lines."""
    rng = random.Random(seed)
    names = [f"S{i:03d}" for i in range(symbols)]
    price = {s: round(20 + 200 * rng.random(), 2) for s in names}
    out = []
    for minute in range(minutes):
        lines = []
        for s in names:
            open_ = price[s]
            close = price[s] = round(open_ * (1 + rng.gauss(0, 0.002)), 2)  # in cents, as trades
            high, low = max(open_, close) + 0.01, min(open_, close) - 0.01
            volume = rng.randint(100, 5_000) * (12 if rng.random() < 0.01 else 1)
            fields = [s, str(T0 + minute * MINUTE), f"{open_:.6f}", f"{high:.6f}", f"{low:.6f}",
                      f"{close:.6f}", str(volume), f"{(open_ + close) / 2:.4f}",
                      str(rng.randint(1, 50))]  # fmt: skip
            lines.append("\t".join(fields))
        out.append("\n".join(lines))
    return out


def measure(symbols: int, minutes: int, repeats: int, every: int) -> dict[str, Any]:
    from flinktrade import accel
    from flinktrade.config import AnalyticsSettings
    from flinktrade.pipeline import operator as operator_module
    from flinktrade.pipeline.analytics import StrategySpec
    from flinktrade.pipeline.operator import AnalyticsOperator, BundledBarOperator

    topics = {"AnalyticsBar": "bars", "Signal": "signals", "Alert": "alerts",
              "DeadLetter": "deadletter"}  # fmt: skip
    sources = {"trades": "market.trades"}
    specs = [StrategySpec(name, {}) for name in BUILTINS]
    all_bundles = bundles(symbols, WARM_MINUTES + minutes * repeats)
    operator = BundledBarOperator(AnalyticsOperator(specs, AnalyticsSettings(), topics, sources))
    operator = pickle.loads(pickle.dumps(operator))  # noqa: S301 (as Flink ships it to a task)
    operator.open(Runtime())
    ctx = Context()
    got: list[Any] = []

    marked = hasattr(operator_module, "JOURNAL_LIMIT")  # a tree that writes at markers
    bundles_done = 0
    in_markers = 0.0

    def run(part: list[str]) -> None:
        nonlocal bundles_done, in_markers
        for bundle in part:
            got.extend(operator.process_element((0, bundle), ctx))
            bundles_done += 1
            if marked and every and bundles_done % every == 0:  # a checkpoint's marker
                started = time.process_time()
                got.extend(operator.process_element((0, None), ctx))
                in_markers += time.process_time() - started

    run(all_bundles[:WARM_MINUTES])
    per_bar, markers, collections = [], [], []
    for k in range(repeats):
        part = all_bundles[WARM_MINUTES + k * minutes : WARM_MINUTES + (k + 1) * minutes]
        got.clear()
        before = [g["collections"] for g in gc.get_stats()]
        in_markers = 0.0
        started = time.process_time()
        run(part)
        per_bar.append((time.process_time() - started) / (minutes * symbols) * 1e6)
        markers.append(in_markers / (minutes * symbols) * 1e6)
        collections.append([g["collections"] - b for g, b in zip(gc.get_stats(), before,
                                                                    strict=True)])  # fmt: skip
    return {
        "contender": "operator",
        "us_per_bar": round(statistics.median(per_bar), 1),
        "min": round(min(per_bar), 1),
        "max": round(max(per_bar), 1),
        "us_per_bar_in_markers": round(statistics.median(markers), 1),
        "rows_per_bar": round(sum(map(output_rows, got)) / (minutes * symbols), 2),
        "gc_collections_per_run": collections[-1],
        "symbols": symbols,
        "checkpoint_every_minutes": every if marked else None,
        "bars_per_run": minutes * symbols,
        "repeats": repeats,
        "clock": "process_time",
        "compiled": accel.status()["loaded"],
    }


def compare(against: Path, pairs: int, args: argparse.Namespace) -> dict[str, Any]:
    """Interleaved fresh processes of this checkout and of ``against`` (a ``src`` directory)."""
    here = Path(__file__).resolve().parents[1] / "src"
    runs: dict[str, list[float]] = {"this": [], "other": []}
    command = [sys.executable, "-m", "bench.operator", "--symbols", str(args.symbols),
               "--minutes", str(args.minutes), "--repeats", str(args.repeats),
               "--checkpoint-every", str(args.checkpoint_every)]  # fmt: skip
    for pair in range(pairs):
        order = [("this", here), ("other", against)]
        for name, src in order if pair % 2 == 0 else order[::-1]:
            env = {**os.environ, "PYTHONPATH": str(src)}
            done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            line = json.loads(done.stdout.strip().splitlines()[-1])
            runs[name].append(line["us_per_bar"])
            print(json.dumps({"pair": pair, "tree": name, **line}), flush=True)
    this, other = statistics.median(runs["this"]), statistics.median(runs["other"])
    return {"contender": "operator-ab", "this_us_per_bar": this, "other_us_per_bar": other,
            "other_over_this": round(other / this, 3), "runs": runs}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--minutes", type=int, default=30, help="minutes (bundles) per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", type=Path, help="another checkout's src directory")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument(
        "--checkpoint-every", type=int, default=1, metavar="MINUTES",
        help="a checkpoint marker after every this many bundles (0: none)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.checkpoint_every < 0:
        parser.error("--checkpoint-every must be 0 or more")
    if args.against is not None:
        print(json.dumps(compare(args.against, args.pairs, args)))
        return
    print(json.dumps(measure(args.symbols, args.minutes, args.repeats, args.checkpoint_every)))


if __name__ == "__main__":
    main()
