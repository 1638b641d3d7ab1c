"""Where flinktrade's catch-up time goes: the job's JVM stages run alone into a blackhole sink.

Each variant is the job's own trade path (``pipeline.job.trade_path``) cut after one more stage,
run as a bounded job over the preloaded trades-1m topic and over a 10k-trade topic in the same JVM; the
rate is the slope (1M - 10k) / (t_1M - t_10k), so job start-up is not in it (PYFLINK_NOTES'
method). The full job's figure comes from ``bench.run`` (it has Python in it).

    source      the trades' Kafka source (``trade_records``: each record's bytes, partition, offset,
                timestamp) -> discard
    parse       + ``ParseTrades`` (Java: parse, validate, late check, bucket) -> discard
    bars        + ``MinuteBars`` (Java, chained: each minute's bars in bundles) -> discard

Prints one JSON line per variant. ``python -m bench.profile_flinktrade``.

``python -m bench.profile_flinktrade --operator [--symbols 100] [--minutes 200] [--cprofile]
[--bundled]``
needs no broker: it runs the job's real ``AnalyticsOperator`` (``BarAnalyticsOperator``'s path,
trades only, the four built-in strategies) outside Flink, on ``bench.core``'s bars, minute by
minute as the job sees them: every symbol's bar through ``process_element1``, then the watermark
passes and every timer fires. Its keyed state pickles on ``update`` and unpickles on ``value``, as
PyFlink's ``PICKLED_BYTE_ARRAY`` converter does in thread mode. One JSON line: CPU time per bar
(``time.process_time``, median of ``--repeats``), split into the element and the timer calls;
with ``--cprofile`` the top functions of one more run to stderr. ``--bundled``: the path of a job
with no news and no provider bars (``BundledBarOperator``): each minute's bars in one bundle (one
bucket), one call, the symbol states in one map state.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from pyflink.java_gateway import get_gateway

from bench.operator import MapState, output_rows
from bench.run import Workload
from flinktrade import bus
from flinktrade.config import AnalyticsSettings, BrokerSettings, KafkaSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.pipeline import connectors
from flinktrade.pipeline.analytics import ClosedBar, StrategySpec, SymbolModel
from flinktrade.pipeline.job import JobOptions, environment, trade_path, trade_records
from flinktrade.pipeline.operator import output_row
from flinktrade.testing.ports import free_port


def _variant(name: str, servers: str, topic: str, group: str, checkpoints: Path) -> float:
    options = JobOptions(checkpoint_dir=checkpoints / group)
    env = environment(options)
    kafka = connectors.KafkaClients(servers, group, bounded=True, from_earliest=True)
    j_env = env._j_stream_execution_environment
    records = trade_records(j_env, kafka, topic, options.out_of_orderness_ms, None)
    started = time.monotonic()
    discard = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink
    if name == "source":
        records.sinkTo(discard())
        env.execute(group)
        return time.monotonic() - started
    path = trade_path(records, 1, 1, bundled=True, large_trade=None)
    if name == "parse":
        path.parsed.sinkTo(discard())
    else:
        path.bars._j_data_stream.sinkTo(discard())
    env.execute(group)
    return time.monotonic() - started


def python_operator_per_bar(work: Workload) -> dict[str, float]:
    """The analytics operator's per-bar Python work outside Flink: the pickles it writes to keyed
    state per bar (pending buffer twice, model state once), ``SymbolModel.on_bar`` and encoding."""
    specs = (StrategySpec("sma_cross", {"fast": 20, "slow": 50}),)
    model = SymbolModel(specs, AnalyticsSettings())
    states: dict[str, dict[str, Any]] = {}
    topics = {"AnalyticsBar": "b", "Signal": "s", "Alert": "a", "DeadLetter": "d"}
    started = time.process_time()
    for r in work.ref_bars:
        item = (r.ts, str(r.open), str(r.high), str(r.low), str(r.close), r.volume, r.vwap)
        pending = [((r.ts + 59_999, 1, ""), "bar", (*item, r.trades, 60_000))]
        pickle.dumps(pending)  # _buffer
        pending = []  # _due: the buffer is cleared
        state = states.setdefault(r.symbol, model.initial_state())
        bar = ClosedBar(
            symbol=r.symbol,
            ts=r.ts,
            open=Decimal(item[1]),
            high=Decimal(item[2]),
            low=Decimal(item[3]),
            close=Decimal(item[4]),
            volume=r.volume,
            vwap=r.vwap,
            trades=r.trades,
            interval_ms=60_000,
        )
        out = model.on_bar(state, bar)
        out += model.check_stale(state, r.symbol, r.ts + 60_000)
        pickle.dumps(state)
        for event in out:
            output_row(topics[type(event).__name__], event)
    cpu = time.process_time() - started
    return {
        "bars": len(work.ref_bars),
        "cpu_s": round(cpu, 2),
        "us_per_bar": round(cpu / len(work.ref_bars) * 1e6),
    }


class _PickledState:
    """A keyed value state as PyFlink's thread mode keeps ``PICKLED_BYTE_ARRAY`` values: pickled
    on ``update``, unpickled on ``value``."""

    def __init__(self, states: dict[str, dict[str, bytes]], name: str, key: list[str]) -> None:
        self.states, self.name, self.key = states, name, key

    def value(self) -> Any:
        raw = self.states[self.name].get(self.key[0])
        return None if raw is None else pickle.loads(raw)  # noqa: S301 (our own bytes)

    def update(self, value: Any) -> None:
        self.states[self.name][self.key[0]] = pickle.dumps(value)

    def clear(self) -> None:
        self.states[self.name].pop(self.key[0], None)


class _Runtime:
    def __init__(self) -> None:
        self.states: dict[str, dict[str, bytes]] = {}
        self.key: list[Any] = [""]
        self.map = MapState()

    def get_map_state(self, descriptor: Any) -> MapState:
        return self.map

    def get_state(self, descriptor: Any) -> _PickledState:
        name = descriptor.get_name()
        self.states.setdefault(name, {})
        return _PickledState(self.states, name, self.key)


class _Ctx:
    """The operator's context for one key: the current key, the watermark, timers."""

    def __init__(self, runtime: _Runtime) -> None:
        self.runtime = runtime
        self.watermark = -(2**63)
        self.timers: set[tuple[int, str]] = set()

    def get_current_key(self) -> str:
        return self.runtime.key[0]

    def timer_service(self) -> _Ctx:
        return self

    def current_watermark(self) -> int:
        return self.watermark

    def register_event_time_timer(self, ts: int) -> None:
        self.timers.add((ts, self.runtime.key[0]))


def _operator_run(
    minutes: list[list[tuple[Any, ...]]], bundled: bool = False
) -> tuple[float, float, int, int]:
    """CPU seconds in ``process_element`` and in ``on_timer``, bars and output rows of one pass
    of a fresh operator over ``minutes`` (each: the ``BAR_ROW_TYPE`` rows closing together).
    ``bundled``: the job without news or provider bars (``BundledBarOperator``, each minute's bars
    as one bundle line each, as ``sql.bar_bundles_view`` writes them); else the bars are buffered
    for their timers, as with provider bars."""
    from bench.core import specs
    from flinktrade.pipeline.operator import (
        AnalyticsOperator,
        BarAnalyticsOperator,
        BundledBarOperator,
    )

    topics = {"AnalyticsBar": "b", "Signal": "s", "Alert": "a", "DeadLetter": "d"}
    analytics = AnalyticsOperator(specs(4), AnalyticsSettings(), topics, {})
    operator: Any = BundledBarOperator(analytics) if bundled else BarAnalyticsOperator(analytics)
    runtime = _Runtime()
    operator.open(runtime)
    ctx = _Ctx(runtime)
    if bundled:
        minutes = [[(0, "\n".join(_bundle_line(row) for row in rows))] for rows in minutes]
    t_in = t_timer = 0.0
    bars = 0
    outs: list[Any] = []  # counted after the timed steps (a lot is unpacked in Java in the job)
    for rows_of_minute in minutes:
        started = time.process_time()
        for row in rows_of_minute:
            runtime.key[0] = row[0] if bundled else row[1]
            outs.extend(operator.process_element(row, ctx))
        t_in += time.process_time() - started
        if bundled:
            lines = rows_of_minute[0][1].split("\n")
            bars += len(lines)
            ctx.watermark = int(lines[0].split("\t")[1]) + 60_000 - 1
        else:
            bars += len(rows_of_minute)
            ctx.watermark = max(row[2] + row[10] - 1 for row in rows_of_minute)  # the bars' end
        started = time.process_time()
        while due := sorted(t for t in ctx.timers if t[0] <= ctx.watermark):
            ctx.timers -= set(due)  # a timer set while these fire, if due, fires in this step
            for ts, key in due:
                runtime.key[0] = key
                outs.extend(operator.on_timer(ts, ctx))
        t_timer += time.process_time() - started
    return t_in, t_timer, bars, sum(map(output_rows, outs))


def _bundle_line(row: tuple[Any, ...]) -> str:
    """A ``BAR_ROW_TYPE`` row as a line of a bundle (``sql.BUNDLE_FIELDS``)."""
    _kind, symbol, ts, open_, high, low, close, volume, vwap, trades, _interval, _text = row
    values = (symbol, ts, open_, high, low, close, volume, vwap, trades)
    return "\t".join("" if v is None else str(v) for v in values)  # NULL: '' as in the SQL


def operator_minutes(symbols: int, minutes: int) -> list[list[tuple[Any, ...]]]:
    """``bench.core``'s bars as ``BAR_ROW_TYPE`` rows (prices as the SQL's decimal strings),
    grouped by minute."""
    from bench.core import workload

    by_ts: dict[int, list[tuple[Any, ...]]] = {}
    for item in workload(symbols, minutes):
        if isinstance(item, ClosedBar):
            by_ts.setdefault(item.ts, []).append(
                ("bar", item.symbol, item.ts, str(item.open), str(item.high), str(item.low),
                 str(item.close), item.volume, item.vwap, item.trades, item.interval_ms, None)
            )  # fmt: skip
    return [by_ts[ts] for ts in sorted(by_ts)]


def operator_per_bar(
    symbols: int, minutes: int, repeats: int, bundled: bool = False
) -> dict[str, Any]:
    from flinktrade import accel

    work = operator_minutes(symbols, minutes)
    _operator_run(work, bundled)  # warm-up, discarded
    runs = [_operator_run(work, bundled) for _ in range(repeats)]
    bars = runs[0][2]
    total = sorted((t_in + t_timer) / bars * 1e6 for t_in, t_timer, _b, _r in runs)
    return {
        "variant": "analytics operator, real state serializer"
        + (", bundled (one call per minute)" if bundled else ""),
        "us_per_bar": round(statistics.median(total), 1),
        "us_per_bar_min": round(total[0], 1),
        "us_per_bar_max": round(total[-1], 1),
        "us_in_element": round(statistics.median(r[0] / bars * 1e6 for r in runs), 1),
        "us_in_timer": round(statistics.median(r[1] / bars * 1e6 for r in runs), 1),
        "bars": bars,
        "rows": runs[0][3],
        "compiled": accel.status()["loaded"],
        "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operator", action="store_true", help="the Python operator alone")
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--minutes", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cprofile", action="store_true", help="top functions to stderr")
    parser.add_argument(
        "--bundled", action="store_true", help="bars in bundles (a job with trades only)"
    )
    args = parser.parse_args()
    if args.operator:
        line = operator_per_bar(args.symbols, args.minutes, args.repeats, args.bundled)
        print(json.dumps(line), flush=True)
        if args.cprofile:
            import cProfile
            import pstats

            work = operator_minutes(args.symbols, args.minutes)
            profiler = cProfile.Profile()
            profiler.runcall(_operator_run, work, args.bundled)
            pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
        return
    with tempfile.TemporaryDirectory(prefix="flinktrade-prof-") as tmp:
        ckpt = Path(tmp) / "checkpoints"
        broker = LocalKafka(
            BrokerSettings(port=free_port(), controller_port=free_port()), Path(tmp)
        )
        broker.up()
        try:
            servers = broker.bootstrap_servers
            settings = KafkaSettings(bootstrap_servers=servers, partitions=4)
            big, small = Workload.make(1_000_000), Workload.make(10_000)
            for topic, work in (("prof.big", big), ("prof.small", small)):
                bus.ensure_topics(settings, [topic])
                producer = bus.EventProducer(servers)
                for key, value, ts in work.records:
                    producer.send_raw(topic, value, key, ts)
                producer.flush()
            print(json.dumps({"variant": "python operator alone", **python_operator_per_bar(big)}))
            _timed("source", servers, "prof.small", ckpt)  # warm the JVM before the first timing
            for name in ("source", "parse", "bars"):
                t_small = _timed(name, servers, "prof.small", ckpt)
                t_big = _timed(name, servers, "prof.big", ckpt)
                rate = (len(big.trades) - len(small.trades)) / max(1e-9, t_big - t_small)
                print(
                    json.dumps(
                        {
                            "variant": name,
                            "wall_10k_s": round(t_small, 2),
                            "wall_1m_s": round(t_big, 2),
                            "slope_trades_per_s": round(rate),
                            "load": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
                        }
                    ),
                    flush=True,
                )
        finally:
            broker.down()


def _timed(name: str, servers: str, topic: str, checkpoints: Path) -> float:
    return _variant(name, servers, topic, f"prof-{name}-{time.monotonic_ns()}", checkpoints)


if __name__ == "__main__":
    main()
