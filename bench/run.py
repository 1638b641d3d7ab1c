"""`make bench` / `make bench-full`: flinktrade against its peers on the trades-1m workload.

Follows ../shared/BENCHMARKS.md. One local broker; the trades are generated once (fixed seed),
encoded once and preloaded into one topic, followed by an explicit end of stream: one record per
symbol with a far-future timestamp (flinktrade's job dead-letters it, and its watermark closes the
last windows; the peers close the symbol's last bar on it). Every contender is a separate process
reading that topic from the earliest offset into its own fresh output topics; the runner then reads
the outputs back and applies the correctness gate (signals exactly, bars to 1e-9, against
``flinktrade.testing.reference``). A contender that fails the gate gets no figure, and the reason.

Catch-up throughput = trades / (last output's emission time - first consumed record's time), from
the records (flinktrade does not expose its first-consumed time, so its span starts at its first
output, which comes ~0.3% into the input: a slight overstatement, noted). CPU-seconds per 1 M
trades are summed over the contender's process tree (Python workers and JVM included); the
broker's CPU during the run is reported separately.

flinktrade runs twice in the catch-up: ``flinktrade``, the job with trades only (the peers'
workload), and ``flinktrade-news``, the job as configured by default, with a news input (a topic
with no story): its bars pass the per-symbol operator one at a time. Open-loop latency runs a
driver at a fixed rate (see ``bench/peers/latency.py``); flinktrade's latency cases are the
trades-only job's.

Prints one JSON line per contender run; ``--full`` repeats everything 5 times (contenders
alternate within each round) and rewrites docs/benchmarks.md and docs/bench-results/.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import Consumer, TopicPartition

from flinktrade import bus
from flinktrade.config import BrokerSettings, KafkaSettings
from flinktrade.infra import jvm
from flinktrade.infra.kafka import LocalKafka
from flinktrade.ingest.simulator import MarketSimulator, RawTrade
from flinktrade.testing import reference
from flinktrade.testing.ports import free_port

log = logging.getLogger("bench")

ROOT = Path(__file__).resolve().parents[1]
MAIN_PY = ROOT / ".venv" / "bin" / "python"
PEERS_PY = ROOT / ".venv-peers" / "bin" / "python"
SYMBOLS = 50
SPAN_MS = 6.5 * 3600 * 1000
SEED = 2024
SEED_STYLE_CAP = 50_000
PARTITIONS = 4
CLK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- workload and reference


@dataclass
class Workload:
    """The encoded trades (plus end-of-stream records) and what the reference says they give."""

    trades: list[RawTrade]
    records: list[tuple[bytes, bytes, int]]
    ref_bars: list[reference.RefBar]
    ref_signals: set[tuple[str, int, str]]

    @classmethod
    def make(cls, n: int, seed: int = SEED) -> Workload:
        gap_ms = SPAN_MS / n
        return cls.from_trades(
            MarketSimulator(SYMBOLS, seed=seed, gap_ms=gap_ms, news=False).trades(n)
        )

    @classmethod
    def from_trades(cls, trades: list[RawTrade]) -> Workload:
        records = [(t.symbol.encode(), t.to_json(t.ts), t.ts) for t in trades]
        far = trades[-1].ts + 86_400_000
        for symbol in sorted({t.symbol for t in trades}):
            eos = b'{"symbol":"%s","eos":true,"ts":%d}' % (symbol.encode(), far)
            records.append((symbol.encode(), eos, far))
        ref = reference.bars((t.symbol, t.price, t.size, t.ts) for t in trades)
        reference.add_sma(ref, [20, 50])
        return cls(trades, records, ref, set(reference.sma_cross_signals(ref, 20, 50)))


def gate(work: Workload, bars: list[dict[str, Any]], signals: list[dict[str, Any]]) -> str | None:
    """None if the outputs match the reference, else why not."""
    got = [(s["symbol"], s["bar_ts"], s["side"]) for s in signals]
    if len(got) != len(set(got)):
        return f"{len(got) - len(set(got))} duplicate signals"
    if set(got) != work.ref_signals:
        missing, extra = len(work.ref_signals - set(got)), len(set(got) - work.ref_signals)
        return f"signals differ from the reference: {missing} missing, {extra} unexpected"
    if len(bars) != len(work.ref_bars):
        return f"{len(bars)} bars, the reference has {len(work.ref_bars)}"
    by_key = {(b["symbol"], b["ts"]): b for b in bars}
    for r in work.ref_bars:
        b = by_key.get((r.symbol, r.ts))
        if b is None:
            return f"bar {r.symbol} {r.ts} missing"
        for name in ("open", "high", "low", "close", "vwap"):
            want, have = float(getattr(r, name)), float(b[name])
            if abs(want - have) > 1e-9 * abs(want):
                return f"bar {r.symbol} {r.ts}: {name} {have} != {want}"
        if int(b["volume"]) != r.volume:
            return f"bar {r.symbol} {r.ts}: volume {b['volume']} != {r.volume}"
    return None


# ---------------------------------------------------------------- processes and CPU


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def _tree(pid: int) -> list[int]:
    out, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += children
            todo += children
    return out


class Watched:
    """A contender process; samples the CPU time of its whole process tree while it runs."""

    def __init__(self, cmd: list[str], logfile: Path) -> None:
        self.logfile = logfile
        with logfile.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.cpu: dict[int, float] = {}
        self.series: list[tuple[int, float]] = []  # (wall ms, CPU seconds of the tree so far)
        self.started = time.time()

    def sample(self) -> None:
        for pid in _tree(self.proc.pid):
            cpu = _cpu_seconds(pid)
            if cpu is not None:
                self.cpu[pid] = max(cpu, self.cpu.get(pid, 0.0))
        self.series.append((time.time_ns() // 1_000_000, sum(self.cpu.values())))

    def cpu_between(self, start_ms: int, end_ms: int) -> float:
        """CPU seconds the tree used between two wall times (linear between samples)."""
        return self._cpu_at(end_ms) - self._cpu_at(start_ms)

    def _cpu_at(self, ms: int) -> float:
        points = self.series
        for (t0, c0), (t1, c1) in itertools.pairwise(points):
            if t0 <= ms <= t1:
                return c0 + (c1 - c0) * (ms - t0) / max(1, t1 - t0)
        return points[-1][1] if points and ms > points[-1][0] else 0.0

    def wait(self, until: Callable[[], bool], timeout_s: float) -> bool:
        """Sample until ``until()`` holds or the process exits; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.sample()
            if self.proc.poll() is not None or until():
                return True
            time.sleep(0.5)
        return False

    def stop(self) -> float:
        """Stop the process tree (SIGINT, then SIGKILL); return its CPU seconds."""
        self.sample()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # stray JVM or Python workers
        return sum(self.cpu.values())

    def tail(self, lines: int = 5) -> str:
        text = self.logfile.read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:])[-600:]


# ---------------------------------------------------------------- contenders


@dataclass(frozen=True)
class Contender:
    name: str
    description: str
    guarantee: str
    python: Path
    module: str
    capped: int | None = None
    peers_venv: bool = False
    extra: tuple[str, ...] = field(default_factory=tuple)


FLINKTRADE_JOB = "bench.flinktrade_job"
"""The module of flinktrade's contenders (the job as shipped, trades only or with news)."""

CONTENDERS = [
    Contender(
        "flinktrade",
        "flinktrade job: Java parse + keyed 1-minute bars in the source's task (JVM), bundled "
        "Python analytics operator (thread mode), parallelism 1",
        "at-least-once, checkpoint every 10 s",
        MAIN_PY,
        FLINKTRADE_JOB,
    ),
    Contender(
        "flinktrade-news",
        "the same job as configured by default, news on (an empty news topic here): each bar "
        "passes the per-symbol Python operator on its own, after the watermark",
        "at-least-once, checkpoint every 10 s",
        MAIN_PY,
        FLINKTRADE_JOB,
    ),
    Contender(
        "plain-loop",
        "confluent-kafka consume/produce loop + orjson, one process",
        "at-least-once, auto-commit every 5 s",
        MAIN_PY,
        "bench.peers.plain_loop",
    ),
    Contender(
        "quixstreams",
        "Quix Streams 3.28.1 app, stateful apply (RocksDB state + changelog), one process",
        "at-least-once, commit every 5 s (default)",
        PEERS_PY,
        "bench.peers.quix_app",
        peers_venv=True,
    ),
    Contender(
        "bytewax",
        "Bytewax 0.21.1 dataflow, stateful_flat_map, 1 worker",
        "no recovery configured (default): at-most-once on failure",
        PEERS_PY,
        "bench.peers.bytewax_flow",
        peers_venv=True,
    ),
    Contender(
        "seed-style",
        "kafka-python, stdlib json, send(...).get() per message",
        "each send acknowledged before the next; auto-commit every 5 s",
        PEERS_PY,
        "bench.peers.seed_style",
        capped=SEED_STYLE_CAP,
        peers_venv=True,
    ),
    Contender(
        "pass-through",
        "confluent-kafka consume -> produce, no decoding (Python plumbing ceiling)",
        "at-least-once",
        MAIN_PY,
        "bench.peers.passthrough",
    ),
    Contender(
        "broker-consume",
        "plain Java KafkaConsumer, default settings, records dropped (broker ceiling)",
        "n/a",
        MAIN_PY,
        "",
    ),
]


class Bench:
    def __init__(
        self, broker: LocalKafka, work: Workload, workdir: Path, prefix: str = "bench"
    ) -> None:
        self.broker = broker
        self.servers = broker.bootstrap_servers
        self.work = work
        self.workdir = workdir
        self.settings = KafkaSettings(bootstrap_servers=self.servers, partitions=PARTITIONS)
        self.input = self.preload(f"{prefix}.trades", work.records)
        capped = work.trades[:SEED_STYLE_CAP]
        self.capped_work = (
            Workload.from_trades(capped) if len(work.trades) > SEED_STYLE_CAP else work
        )
        self.capped_input = (
            self.preload(f"{prefix}.trades.capped", self.capped_work.records)
            if self.capped_work is not work
            else self.input
        )

    def preload(self, topic: str, records: Iterable[tuple[bytes, bytes, int]]) -> str:
        bus.ensure_topics(self.settings, [topic])
        producer = bus.EventProducer(self.servers)
        for key, value, ts in records:
            producer.send_raw(topic, value, key, ts)
        producer.flush()
        return topic

    def topics(self, prefix: str) -> dict[str, str]:
        names = {k: f"{prefix}.{k}" for k in ("bars", "signals", "alerts", "deadletter", "ticks")}
        bus.ensure_topics(self.settings, names.values())
        return names

    def catch_up(self, c: Contender, run: int) -> dict[str, Any]:
        work = self.capped_work if c.capped else self.work
        source = self.capped_input if c.capped else self.input
        n = len(work.trades)
        prefix = f"{self.input}.r{run}.{c.name}.{time.monotonic_ns() % 10**8}"
        names = self.topics(prefix)
        stats = self.workdir / f"{prefix}.stats.json"
        result: dict[str, Any] = {
            "contender": c.name,
            "mode": "catch-up",
            "run": run,
            "description": c.description,
            "delivery": c.guarantee,
            "trades": n,
            "capped": c.capped is not None,
            "load_before": _loadavg(),
        }
        if c.peers_venv and not c.python.exists():
            return result | {"correct": None, "reason": "no .venv-peers (run `make bench`)"}
        if c.name == "broker-consume":
            cmd = [
                jvm.java_binary(),
                "-cp",
                jvm.kafka_classpath(),
                str(ROOT / "bench" / "BrokerConsume.java"),
                self.servers,
                source,
                str(len(work.records)),
            ]
        else:
            cmd = [str(c.python), "-m", c.module, "--servers", self.servers, "--input", source]
            cmd += ["--group", prefix, "--stats", str(stats)]
            for k in ("bars", "signals", "alerts"):
                cmd += [f"--{k}", names[k]]
            if c.module == FLINKTRADE_JOB:
                cmd += ["--deadletter", names["deadletter"]]
            if c.name == "flinktrade-news":  # its news input: a topic with no story
                bus.ensure_topics(self.settings, [f"{prefix}.news"])
                cmd += ["--news", f"{prefix}.news"]
            if c.name == "seed-style":
                bus.ensure_topics(self.settings, [source + ".ticks"])
        broker_cpu0 = _cpu_seconds(self.broker.status().pid or 0) or 0.0
        wall0 = time.time()
        proc = Watched(cmd, self.workdir / f"{prefix}.log")
        expected = self._expected(c, work)
        timeout = 150.0 if c.capped else 1200.0
        finished = proc.wait(lambda: self._done(names, expected), timeout)
        if c.name != "broker-consume" and c.module != FLINKTRADE_JOB and finished:
            time.sleep(1.0)  # let late duplicates or extra records land before the gate
        cpu = proc.stop()
        wall = time.time() - wall0
        broker_cpu = (_cpu_seconds(self.broker.status().pid or 0) or 0.0) - broker_cpu0
        result |= {
            "wall_s": round(wall, 2),
            "cpu_s_per_1m": {
                "contender": round(cpu * 1e6 / n, 2),
                "broker_during_run": round(broker_cpu * 1e6 / n, 2),
            },
            "load_after": _loadavg(),
        }
        if not finished:
            return result | {
                "correct": False,
                "reason": f"did not finish in {timeout:.0f} s; log: {proc.tail()}",
            }
        if c.name == "broker-consume":
            out = json.loads(proc.logfile.read_text().strip().splitlines()[-1])
            span = (out["last_ms"] - out["first_ms"]) / 1000
            return result | {"correct": None, "processing_s": span, "trades_per_s": _rate(n, span)}
        if c.name == "pass-through":
            count = bus.count_records(self.servers, names["bars"])
            first = json.loads(stats.read_text())["first_consumed_ms"]
            span = (_last_timestamp(self.servers, names["bars"]) - first) / 1000
            ok = count == len(work.records)
            reason = None if ok else f"{count} records out, {len(work.records)} in"
            return result | {
                "correct": ok,
                "reason": reason,
                "processing_s": round(span, 2),
                "trades_per_s": _rate(n, span) if ok else None,
            }
        if proc.proc.returncode not in (None, 0, -2, 130) and c.module == FLINKTRADE_JOB:
            return result | {"correct": False, "reason": f"job failed: {proc.tail()}"}
        bars = _read_json(self.servers, names["bars"])
        signals = _read_json(self.servers, names["signals"])
        reason = gate(work, bars, signals)
        emitted = [r["ingest_ts"] for r in bars + signals]
        first_out = min(emitted) if emitted else 0
        side = json.loads(stats.read_text()) if stats.exists() else {}
        first = side.get("first_consumed_ms", first_out)
        span = (max(emitted, default=0) - first) / 1000
        result |= {
            "correct": reason is None,
            "reason": reason,
            "bars": len(bars),
            "signals": len(signals),
            "processing_s": round(span, 2),
            "span_from": "first consumed record" if "first_consumed_ms" in side else "first output",
            "trades_per_s": _rate(n, span) if reason is None else None,
        }
        if "submitted_ms" in side:
            result["startup_s"] = round((first_out - side["submitted_ms"]) / 1000, 2)
        if "command_ms" in side:  # the command to the first output (JVM, build, deployment)
            result["startup_from_command_s"] = round((first_out - side["command_ms"]) / 1000, 2)
        if reason is None:
            # Steady state: CPU between the first and the last output, per trade in that span
            # (start-up, e.g. the JVM and job deployment, excluded).
            last = max(emitted)
            done = sum(1 for t in work.trades if t.ts >= work.trades[0].ts + 60_000)
            steady = proc.cpu_between(first_out, last)
            result["cpu_s_per_1m"]["contender_steady"] = round(steady * 1e6 / done, 2)
        return result

    def _expected(self, c: Contender, work: Workload) -> tuple[int, int]:
        if c.name == "pass-through":
            return len(work.records), 0
        return len(work.ref_bars), len(work.ref_signals)

    def _done(self, names: dict[str, str], expected: tuple[int, int]) -> bool:
        bars = bus.count_records(self.servers, names["bars"])
        return (
            bars >= expected[0]
            and bus.count_records(self.servers, names["signals"]) >= (expected[1])
        )


def _rate(n: int, span_s: float) -> int | None:
    return round(n / span_s) if span_s > 0 else None


def _loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def _read_json(servers: str, topic: str) -> list[dict[str, Any]]:
    return [orjson.loads(m.value() or b"{}") for m in bus.read_all(servers, topic, timeout_s=300)]


def _last_timestamp(servers: str, topic: str) -> int:
    """The largest record timestamp among the last record of each partition."""
    consumer = Consumer(
        {"bootstrap.servers": servers, "group.id": "bench-last", "enable.auto.commit": False}
    )
    try:
        ends = [tp for tp in bus.end_offsets(consumer, topic) if tp.offset > 0]
        consumer.assign([TopicPartition(topic, tp.partition, tp.offset - 1) for tp in ends])
        last, seen = 0, 0
        while seen < len(ends):
            msg = consumer.poll(5)
            if msg is None:
                break
            if msg.error() is None:
                last = max(last, msg.timestamp()[1])
                seen += 1
        return last
    finally:
        consumer.close()


# ---------------------------------------------------------------- open-loop latency


@dataclass(frozen=True)
class LatencyCase:
    contender: str
    profile: str  # "default" or "low-latency"
    rate: int
    live: bool = False
    """The live-like case: event time = wall time, ``LIVE_SYMBOLS`` symbols, a history first."""


def _latency_trades(count: int, seed: int = SEED + 1) -> list[RawTrade]:
    """``count`` trades spread over ~6.5 h of event time, so SMA50 fills and signals fire."""
    gap_ms = SPAN_MS / count
    return MarketSimulator(SYMBOLS, seed=seed, gap_ms=gap_ms, news=False).trades(count)


WARMUP_TRADES = 300_000
"""Trades preloaded before a compressed latency run, in the ~6.5 h of event time before its own
(``_warmup_trades``). Every contender processes them before the timed trades are sent, and none of
their outputs is timed (the collector times only outputs triggered by the timed trades, after its
own 20 % warm-up): a JVM's JIT compilers take most of a core for tens of seconds after a job
starts, which a 20 s run on 2 cores otherwise measures instead of the steady state
(docs/benchmarks.md, Method, "Warm-up phase"). ../shared/BENCHMARKS.md: warm up with
a separate phase or discard the start."""


def _warmup_trades(count: int, before_ts: int) -> list[RawTrade]:
    """``count`` trades over the ``SPAN_MS`` of event time that end before ``before_ts``."""
    start = int(before_ts - SPAN_MS) // 60_000 * 60_000
    sim = MarketSimulator(
        SYMBOLS, seed=SEED + 3, start_ts=start, gap_ms=SPAN_MS / count, news=False
    )
    return [t for t in sim.trades(count) if t.ts < before_ts]


LIVE_SYMBOLS = 500
LIVE_CLOSES = 3
"""Minute ends timed per live run (every symbol's bar closes at each: bursts of 500 bars)."""
LIVE_HISTORY_MIN = 53
"""Minutes of history preloaded before a live run, so SMA50 is defined and signals can fire."""
LIVE_HISTORY_TRADES_PER_BAR = 4
"""Trades per bar in the history's first ``LIVE_HISTORY_MIN - LIVE_HISTORY_AT_RATE_MIN`` minutes."""
LIVE_HISTORY_AT_RATE_MIN = 21
"""The history's last minutes come at the live rate (``rate`` trades/s), as a feed that has been
running would have them: the bar rules compare each bar with the 20 before it (``volume_z_20``,
the price-jump window), and after minutes of 4 trades a bar every live bar of ~240 trades was a
volume spike and many a price jump (~2.5 output rows a bar instead of ~1; docs/benchmarks.md)."""
LIVE_FIRST_CLOSE_AFTER_S = 15.0
"""The first timed minute end comes at least this long after the live trades start."""
FLINK_CLOSE_BOUND_MS = 2_000
"""flinktrade's out-of-orderness bound (``JobOptions.out_of_orderness_ms``): its bars can close
this long after their minute ends; the peers close a bar on the symbol's next trade (bound 0)."""


def _live_trades(
    live_count: int, history_end_ms: int, rate: int
) -> tuple[list[RawTrade], list[RawTrade]]:
    """``LIVE_HISTORY_MIN`` minutes of history ending at ``history_end_ms`` (the last
    ``LIVE_HISTORY_AT_RATE_MIN`` of them at ``rate`` trades/s, those before at
    ``LIVE_HISTORY_TRADES_PER_BAR`` trades a bar), then ``live_count`` trades to be sent live (the
    driver replaces their ``ts`` with their send time); one price path per symbol through all."""
    thin_min = LIVE_HISTORY_MIN - LIVE_HISTORY_AT_RATE_MIN
    thin_count = LIVE_SYMBOLS * thin_min * LIVE_HISTORY_TRADES_PER_BAR
    start = history_end_ms - LIVE_HISTORY_MIN * 60_000
    start -= start % 60_000
    sim = MarketSimulator(
        LIVE_SYMBOLS,
        seed=SEED + 2,
        start_ts=start,
        gap_ms=thin_min * 60_000 / thin_count,
        news=False,
    )
    thin = [t for t in sim.trades(thin_count) if t.ts < history_end_ms]
    at_rate_from = start + thin_min * 60_000  # a minute boundary
    sim.ts = max(sim.ts, at_rate_from)
    sim.gap_ms = 1000 / rate  # the generator reads it at each step
    at_rate = sim.trades(rate * (history_end_ms - at_rate_from) // 1000)
    history = thin + [t for t in at_rate if t.ts < history_end_ms]
    return history, sim.trades(live_count)


BROKER_WARMUP = LatencyCase("plain-loop", "default", 2000)
"""The untimed run that warms the broker up before the first timed latency case: a fresh broker's
JVM compiles its request paths with C2 for the first minute of small produce and fetch requests,
on a third to half of a core, and the first contender timed on it paid for that (flinktrade's
low-latency bars p99 2.9-3.0 s as the first on a fresh broker, 0.16-0.36 s second; the plain loop
timed second was unaffected). Its result is discarded."""


def warm_broker(latency: LatencyBench, rate: int) -> None:
    log.info("latency: warming the broker up (one untimed plain-loop run)")
    result = latency.run(replace(BROKER_WARMUP, rate=rate), -1)
    if "error" in result:
        log.warning("the broker warm-up run failed: %s", result["error"])


class LatencyBench:
    def __init__(self, bench: Bench, duration_s: float) -> None:
        self.bench = bench
        self.duration_s = duration_s

    def run(self, case: LatencyCase, run: int) -> dict[str, Any]:
        b = self.bench
        contender = next(c for c in CONTENDERS if c.name == case.contender)
        live = " live" if case.live else ""
        prefix = (
            f"lat{run}.{case.contender}.{case.profile}.{case.rate}{live.strip()}."
            f"{time.monotonic_ns() % 10**6}"
        )
        names = b.topics(prefix)
        source = f"{prefix}.in"
        bus.ensure_topics(b.settings, [source])
        history_bars = 0
        if case.live:
            # Enough live trades for the longest run (first timed minute end up to 75 s after the
            # start, then 2 more, the bound and 3 s): the file is cut to the run's length later.
            # History ends 5 s before a minute boundary: exactly one minute (each symbol's last
            # bar) stays open in every contender until the live trades come.
            history_end = (time.time_ns() // 1_000_000 - 65_000) // 60_000 * 60_000 - 5_000
            history, trades = _live_trades(case.rate * 210, history_end, case.rate)
            history_bars = len(reference.bars((t.symbol, t.price, t.size, t.ts) for t in history))
            b.preload(source, [(t.symbol.encode(), t.to_json(t.ts), t.ts) for t in history])
            count = len(trades)
        else:
            count = int(case.rate * self.duration_s)
            trades = _latency_trades(count)
            warm = _warmup_trades(WARMUP_TRADES, trades[0].ts)
            history_bars = len(reference.bars((t.symbol, t.price, t.size, t.ts) for t in warm))
            b.preload(source, [(t.symbol.encode(), t.to_json(t.ts), t.ts) for t in warm])
        trades_file = b.workdir / f"{prefix}.trades"
        if not case.live:  # a live run writes its file once it knows its length
            trades_file.write_bytes(
                b"".join(b"%s %d %s\n" % (t.symbol.encode(), t.ts, t.to_json(t.ts)) for t in trades)
            )
        stats = b.workdir / f"{prefix}.stats.json"
        result: dict[str, Any] = {
            "contender": case.contender,
            "mode": "latency-live" if case.live else "latency",
            "profile": case.profile,
            "rate_per_s": case.rate,
            "records": count,
            "run": run,
            "load_before": _loadavg(),
        }
        if not case.live:
            result["expected_bars"] = len(
                reference.bars((t.symbol, t.price, t.size, t.ts) for t in trades)
            )
        if not PEERS_PY.exists():
            return result | {"error": "no .venv-peers: the latency driver needs hdrhistogram"}
        cmd = [str(contender.python), "-m", contender.module, "--servers", b.servers]
        cmd += ["--input", source, "--group", prefix, "--stats", str(stats)]
        for k in ("bars", "signals", "alerts"):
            cmd += [f"--{k}", names[k]]
        if case.contender == "flinktrade":
            cmd += ["--deadletter", names["deadletter"], "--unbounded"]
        if case.profile == "low-latency":
            cmd.append("--low-latency")
        proc = Watched(cmd, b.workdir / f"{prefix}.log")
        ready = proc.wait(lambda: stats.exists() and "ready_ms" in stats.read_text(), 600)
        if not ready or proc.proc.poll() is not None:
            proc.stop()
            return result | {"error": f"contender did not start: {proc.tail()}"}
        time.sleep(5.0)  # consumer group assignment / task deployment after "ready"
        if history_bars:
            # The history's bars first (all but each symbol's last, which the next trades close):
            # the live case's history, or the compressed case's warm-up.
            # Which minutes are still open depends on the partitions' last event times: allow
            # each symbol up to three (the wait is for the warm-up, not a count of outputs).
            symbols = LIVE_SYMBOLS if case.live else 3 * SYMBOLS
            caught_up = proc.wait(
                lambda: bus.count_records(b.servers, names["bars"]) >= history_bars - symbols,
                600,
            )
            if not caught_up or proc.proc.poll() is not None:
                proc.stop()
                return result | {"error": f"history not processed in 600 s: {proc.tail()}"}
            side = json.loads(stats.read_text())
            if "command_ms" in side:
                result["ready_from_command_s"] = round(
                    (side["ready_ms"] - side["command_ms"]) / 1000, 2
                )
            result["history_caught_up_s"] = round(time.time() - side["ready_ms"] / 1000, 1)
            if not case.live:
                result["warmup_trades"] = len(warm)
        t0_us = time.time_ns() // 1000 + 2_000_000
        common = ["--servers", b.servers, "--trades", str(trades_file), "--rate", str(case.rate)]
        common += ["--t0-us", str(t0_us), "--drain-s", "10"]
        if case.live:
            first_end_ms = (t0_us // 1000 + int(LIVE_FIRST_CLOSE_AFTER_S * 1000)) // 60_000 + 1
            first_end_ms *= 60_000
            last_end_ms = first_end_ms + (LIVE_CLOSES - 1) * 60_000
            send_s = (last_end_ms + FLINK_CLOSE_BOUND_MS + 3_000) / 1000 - t0_us / 1e6
            count = min(count, int(case.rate * send_s))
            trades_file.write_bytes(
                b"".join(
                    b"%s %d %s\n" % (t.symbol.encode(), t.ts, t.to_json(t.ts))
                    for t in trades[:count]
                )
            )
            bound = FLINK_CLOSE_BOUND_MS if case.contender == "flinktrade" else 0
            common += ["--live", "--close-bound-ms", str(bound)]
            common += ["--warmup-until-us", str((first_end_ms - 1_000) * 1000)]
            result |= {
                "records": count,
                "symbols": LIVE_SYMBOLS,
                "history_bars": history_bars,
                "timed_minute_ends": LIVE_CLOSES,
                "close_bound_ms": bound,
            }
        collector = subprocess.Popen(
            [
                str(PEERS_PY),
                "-m",
                "bench.peers.latency",
                "collect",
                *common,
                "--bars",
                names["bars"],
                "--signals",
                names["signals"],
                "--alerts",
                names["alerts"],
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        driver = subprocess.Popen(
            [str(PEERS_PY), "-m", "bench.peers.latency", "drive", *common, "--topic", source],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        cpu_driver = 0.0
        proc.sample()
        timed_from_ms = time.time_ns() // 1_000_000
        while driver.poll() is None:
            proc.sample()
            cpu_driver = max(cpu_driver, _cpu_seconds(driver.pid) or 0.0)
            time.sleep(0.5)
        while collector.poll() is None:
            proc.sample()
            time.sleep(0.5)
        proc.sample()
        cpu = proc.cpu_between(timed_from_ms, time.time_ns() // 1_000_000)  # not the warm-up's
        proc.stop()
        driver_out = json.loads((driver.stdout.read() if driver.stdout else "{}") or "{}")
        latencies = json.loads((collector.stdout.read() if collector.stdout else "{}") or "{}")
        return result | {
            "driver": driver_out,
            "latency": latencies,
            "contender_cpu_s_per_1m": round(cpu * 1e6 / count, 2),
            "load_after": _loadavg(),
        }


# ---------------------------------------------------------------- main


QUICK_RATE = 2_000
"""One rate for `make bench`: well below every contender's catch-up rate on this shared machine."""
QUICK_LATENCY = [
    LatencyCase("flinktrade", "default", QUICK_RATE),
    LatencyCase("flinktrade", "low-latency", QUICK_RATE),
    LatencyCase("plain-loop", "default", QUICK_RATE),
    LatencyCase("plain-loop", "low-latency", QUICK_RATE),
    LatencyCase("quixstreams", "default", QUICK_RATE),
    LatencyCase("bytewax", "default", QUICK_RATE),
]
FULL_LATENCY_RATES = (1_000, 2_000, 5_000, 20_000)
"""The full sweep's rates: the issue's goals are stated at 1,000, 2,000 and 5,000 trades/s; at 20,000
every contender saturates this machine."""
LIVE_RATE = 2_000
LIVE_LATENCY = [
    LatencyCase(c, p, LIVE_RATE, live=True)
    for c, p in (
        ("flinktrade", "default"),
        ("flinktrade", "low-latency"),
        ("plain-loop", "default"),
        ("plain-loop", "low-latency"),
        ("quixstreams", "default"),
        ("bytewax", "default"),
    )
]
"""The live-like case (event time = wall time, 500 symbols, 2,000 trades/s, 3 minute ends), in
both the quick and the full set; ~4-5 min per contender (history catch-up included)."""


def main() -> None:
    parser = argparse.ArgumentParser(description="flinktrade vs peers (see bench/run.py)")
    parser.add_argument("--full", action="store_true", help="5 repeats, rates sweep, docs")
    parser.add_argument(
        "--trades", type=int, default=int(os.environ.get("BENCH_TRADES", "1000000"))
    )
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--contenders", default=",".join(c.name for c in CONTENDERS))
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument("--latency-only", action="store_true", help="skip the catch-up runs")
    parser.add_argument("--latency-rates", default="", help="e.g. 2000,5000 (quick set's cases)")
    parser.add_argument("--live-only", action="store_true", help="only the live-like cases")
    parser.add_argument("--no-live", action="store_true", help="without the live-like cases")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    repeats = args.repeats or (5 if args.full else 1)
    chosen = [c for c in CONTENDERS if c.name in args.contenders.split(",")]
    if args.no_latency:
        cases: list[LatencyCase] = []
    elif args.full:
        cases = [
            LatencyCase(c, p, r)
            for r in FULL_LATENCY_RATES
            for c, p in (
                ("flinktrade", "default"),
                ("flinktrade", "low-latency"),
                ("plain-loop", "default"),
                ("plain-loop", "low-latency"),
                ("quixstreams", "default"),
                ("quixstreams", "low-latency"),
                ("bytewax", "default"),
                ("bytewax", "low-latency"),
            )
        ]
    else:
        cases = QUICK_LATENCY
    if args.latency_rates:
        rates = [int(r) for r in args.latency_rates.split(",")]
        cases = [LatencyCase(c.contender, c.profile, r) for r in rates for c in cases]
        cases = list(dict.fromkeys(cases))
    if args.live_only:
        cases = []
    if not args.no_latency and not args.no_live:
        cases += LIVE_LATENCY
    cases = [c for c in cases if c.contender in {x.name for x in chosen}]
    results: list[dict[str, Any]] = []
    started = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="flinktrade-bench-") as tmp:
        workdir = Path(tmp)
        broker = LocalKafka(
            BrokerSettings(port=free_port(), controller_port=free_port()), workdir / "state"
        )
        broker.up()
        try:
            log.info("generating %d trades and the reference", args.trades)
            work = Workload.make(args.trades)
            bench = Bench(broker, work, workdir)
            for run in range(0 if args.latency_only else repeats):
                shift = run % len(chosen)
                for c in chosen[shift:] + chosen[:shift]:  # alternate the order between rounds
                    log.info("catch-up run %d: %s", run, c.name)
                    results.append(_emit(bench.catch_up(c, run)))
            latency = LatencyBench(bench, args.latency_seconds)
            if cases:
                warm_broker(latency, cases[0].rate)
            for run in range(1):
                for case in cases:
                    log.info(
                        "latency%s: %s %s %d/s",
                        " (live-like)" if case.live else "",
                        case.contender,
                        case.profile,
                        case.rate,
                    )
                    results.append(_emit(latency.run(case, run)))
        finally:
            broker.down()
    if args.full:
        from bench import report

        report.write(results, started, ["python", "-m", "bench.run", *sys.argv[1:]])


def _emit(result: dict[str, Any]) -> dict[str, Any]:
    result["machine"] = _machine()
    result["date"] = datetime.now(UTC).strftime("%Y-%m-%d")
    print(json.dumps(result), flush=True)
    return result


def _machine() -> str:
    mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    return (
        f"{os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GiB, {platform.machine()}, "
        f"Python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
