"""``make soak``: the whole system under a steady open-loop load, with malformed records mixed in,
optionally with faults; prints ONE JSON line with every figure and pass criterion.

What runs, each as it runs in production:

- a dedicated Kafka broker (``flinktrade.infra.kafka.LocalKafka``) on free ports with its own data
  folder under the work directory, stopped at the end;
- the job: ``flinktrade job run --from-earliest`` (unbounded, in-process MiniCluster) in its own
  process; its MiniCluster's REST endpoint is found among the ports its JVM listens on;
- ``flinktrade execute --broker sim --from-earliest`` and ``flinktrade notify --from-earliest`` as
  separate processes, the notifier posting to the loopback Slack fake (in this process);
- the load generator (``bench.soak_load``) in its own process: ``--rate`` records/s for
  ``--duration`` s over ``--symbols`` symbols, event time = wall time, ``--malformed`` hostile
  records spread evenly among them, and the reference bars of what it sent;
- a collector (a thread here) reading every output topic from the beginning.

All services read one TOML file written into the work directory (``FLINKTRADE_CONFIG``; the
caller's ``FLINKTRADE_*``/``SLACK_*``/``APCA_*`` variables are not passed on). The strategy is
``sma_cross`` with fast 2 / slow 5, so signals (and orders, fills, Slack messages) start after
five minutes of bars, and the executor's clock- and size-based risk limits are opened up, so an
order's fate depends on the signal, not on how fast the soak runs.

Pass criteria (``criteria`` in the JSON line): every bar the job must have closed is there and
equals the reference (OHLC exact, volume, trade count, VWAP to 1e-9), no bar it wrote differs or is
unknown; the signals equal the SMA-cross reference on those bars; exactly one dead letter with a
reason per malformed record and no other; one order per signal, no fill twice, fills adding up;
no bar, signal, order event or fill written twice with the same id;
the job never failed over (Flink REST: ``numRestarts`` and the exception history) and still runs;
executor and notifier alive with the pids they started with; the job's RSS (Python + its JVM)
grew less than 10 % from minute 2 (or 20 % of the run if shorter) to the end of the load; every
required bar and dead letter written within 10 s after the last record was sent.

``--faults``: during the load the broker is SIGKILLed and restarted (at 30 %); once orders flow
(after the strategy's ``--slow`` bars of warm-up; at 80 % at the latest) the Slack fake answers
429 then 500 for a minute (at most 20 % of the run), and the executor is SIGKILLed and restarted
in the middle of that minute and at its end. The same data criteria apply (nothing lost, nothing
conflicting, no second order for a signal); the executor's pid changes twice by design; the job
must still run (a fail-over is reported; with at-least-once outputs it shows up as repeated
bars and signals, counted as ``wire_repeats``); RSS and the catch-up bound are not criteria.

Dead letters are counted by source record (partition and offset): the job's dead-letter sink is
at-least-once, so one written twice after a broker restart is one (reported as
``repeated_offsets``). A failed soak names each failed criterion with its figures, in the JSON
line (``failed``) and as the last lines of its log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from confluent_kafka import Consumer

from bench.soak_check import (
    REST_ERRORS,
    FlinkRest,
    compare_bars,
    compare_dead_letters,
    compare_orders,
    compare_signals,
    failed_criteria,
    must_close,
    reference_signals,
    rss_bytes,
)
from flinktrade import bus, topics
from flinktrade.config import BrokerSettings, KafkaSettings
from flinktrade.infra.kafka import LocalKafka
from flinktrade.testing.fake_slack import FakeSlack, Received
from flinktrade.testing.ports import free_port

log = logging.getLogger("soak")

REPO = Path(__file__).resolve().parents[1]
FAST, SLOW = 2, 5
STRATEGY = "sma_cross"
CATCH_UP_S = 10.0
RSS_GROWTH_MAX = 0.10
SAMPLE_S = 5.0
PASSED_ENV = ("FLINKTRADE_", "SLACK_", "APCA_")

CONFIG = """\
state_dir = "{state}"

[kafka]
bootstrap_servers = "{servers}"
partitions = {partitions}

[[strategies]]
name = "{strategy}"
params = {{ fast = {fast}, slow = {slow} }}

[execution.risk]
allow_outside_market_hours = true
allow_short = true
max_order_qty = 1000000
max_order_notional = 1000000000
max_position_qty = 1000000
max_gross_exposure = 1000000000000
max_open_orders = 1000000
max_orders_per_minute = 1000000
halt_after_rate_denials = 1000000
daily_loss_limit = 1000000000000
max_drawdown_pct = 100
max_signal_age_s = 3600

[execution.sim]
starting_cash = 1000000000000
"""


@dataclass
class Options:
    duration: float
    rate: float
    symbols: int
    malformed: int
    faults: bool
    partitions: int
    seed: int
    workdir: Path | None
    event_offset_ms: int
    drain_s: float
    broker_heap: str
    fast: int = FAST
    slow: int = SLOW

    @classmethod
    def parse(cls, argv: list[str] | None = None) -> Options:
        p = argparse.ArgumentParser(
            prog="python -m bench.soak", description=__doc__.split("\n")[0] if __doc__ else None
        )
        p.add_argument("--duration", type=float, default=600.0, help="seconds of load")
        p.add_argument("--rate", type=float, default=20_000.0, help="records per second")
        p.add_argument("--symbols", type=int, default=500)
        p.add_argument("--malformed", type=int, default=10_000, help="hostile records mixed in")
        p.add_argument("--faults", action="store_true", help="kill broker/executor, Slack errors")
        p.add_argument("--partitions", type=int, default=4)
        p.add_argument("--seed", type=int, default=7)
        p.add_argument("--workdir", type=Path, help="keep state and logs here (default: temp)")
        p.add_argument(
            "--event-offset-ms",
            type=int,
            default=0,
            help="event time = wall time + this (short runs: start just before a minute ends)",
        )
        p.add_argument("--drain-s", type=float, default=60.0, help="longest wait after the load")
        p.add_argument("--broker-heap", default="1g")
        p.add_argument("--fast", type=int, default=FAST, help="sma_cross fast period (bars)")
        p.add_argument("--slow", type=int, default=SLOW, help="sma_cross slow period (bars)")
        a = p.parse_args(argv)
        if a.duration <= 0 or a.rate <= 0 or a.symbols < 1 or a.malformed < 0:
            p.error("duration and rate must be > 0, symbols >= 1, malformed >= 0")
        if not 2 <= a.fast < a.slow:
            p.error("--fast and --slow need 2 <= fast < slow")
        if a.malformed * 2 > a.duration * a.rate:
            p.error("--malformed must be at most half of duration x rate")
        return cls(
            a.duration,
            a.rate,
            a.symbols,
            a.malformed,
            a.faults,
            a.partitions,
            a.seed,
            a.workdir,
            a.event_offset_ms,
            a.drain_s,
            a.broker_heap,
            a.fast,
            a.slow,
        )


@dataclass
class Collected:
    """What the collector read, with the wall time each bar and dead letter first arrived."""

    bars: dict[tuple[str, int], list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    bar_seen: dict[tuple[str, int], float] = field(default_factory=dict)
    signals: list[dict[str, Any]] = field(default_factory=list)
    orders: list[dict[str, Any]] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    last_dead_at: float = 0.0
    alerts: Counter[str] = field(default_factory=Counter)
    undecodable: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class Collector(threading.Thread):
    """Reads the output topics from the beginning for the whole run."""

    TOPICS: ClassVar[dict[str, str]] = {
        topics.ANALYTICS_BARS.name: "bar",
        topics.SIGNALS.name: "signal",
        topics.ORDERS.name: "order",
        topics.FILLS.name: "fill",
        topics.DEADLETTER.name: "dead",
        topics.ALERTS.name: "alert",
    }

    def __init__(self, servers: str) -> None:
        super().__init__(name="collector", daemon=True)
        self.servers = servers
        self.out = Collected()
        self.stop = threading.Event()

    def run(self) -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": self.servers,
                "group.id": f"soak-collector-{os.getpid()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe(list(self.TOPICS))
        try:
            while not self.stop.is_set():
                for msg in consumer.consume(500, 0.2):
                    if msg.error() is None:
                        self._take(self.TOPICS[msg.topic() or ""], msg.value() or b"")
        finally:
            consumer.close()

    def _take(self, kind: str, value: bytes) -> None:
        now = time.time()
        try:
            rec = json.loads(value, parse_float=Decimal)
        except ValueError:
            self.out.undecodable += 1
            return
        out = self.out
        with out.lock:
            if kind == "bar":
                key = (str(rec["symbol"]), int(rec["ts"]))
                out.bars[key].append(rec)
                out.bar_seen.setdefault(key, now)
            elif kind == "signal":
                out.signals.append(rec)
            elif kind == "order":
                out.orders.append(rec)
            elif kind == "fill":
                out.fills.append(rec)
            elif kind == "dead":
                out.dead.append(rec)
                out.last_dead_at = now
            else:
                out.alerts[str(rec.get("kind"))] += 1


class SlackCounter:
    """Counts what the Slack fake answered."""

    def __init__(self) -> None:
        self.answers: Counter[str] = Counter()

    def __call__(self, request: Received) -> None:
        self.answers["accepted" if request.accepted else f"refused_{request.status}"] += 1


class Service:
    """One ``flinktrade`` command in its own process group, its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], workdir: Path) -> None:
        self.name, self.argv, self.env, self.workdir = name, argv, env, workdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []

    def start(self) -> None:
        with (self.workdir / f"{self.name}.log").open("ab") as logf:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.workdir,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.pids.append(self.proc.pid)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash would, and reap it."""
        if self.proc is not None and self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)

    def stop(self, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the process group, SIGKILL it after ``timeout_s``; the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored SIGTERM; killing it", self.name)
        with contextlib.suppress(ProcessLookupError):  # what is left of the group (the JVM)
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        return self.proc.returncode

    def tail(self, lines: int = 3) -> str:
        """The last error in the log (an ``error:`` line or an exception with the lines after
        it), stack frames left out; else its last lines."""
        try:
            text = (self.workdir / f"{self.name}.log").read_text(errors="replace")
        except OSError:
            return ""
        rows = [
            r.strip()
            for r in text.splitlines()
            if r.strip() and not r.lstrip().startswith(("at ", "File ", "...")) and r[:1] != " "
        ]
        hits = [i for i, r in enumerate(rows) if "Exception" in r or r.startswith("error:")]
        start = hits[-1] if hits else max(0, len(rows) - lines)
        return " | ".join(rows[start : start + lines])


class Soak:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.workdir = (opts.workdir or Path(tempfile.mkdtemp(prefix="flinktrade-soak-"))).resolve()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.state = self.workdir / "state"
        self.kafka = LocalKafka(
            BrokerSettings(port=free_port(), controller_port=free_port(), heap=opts.broker_heap),
            self.state,
        )
        self.slack_counter = SlackCounter()
        self.slack = FakeSlack(on_request=self.slack_counter)
        self.samples: list[tuple[float, int]] = []
        self.job_states: Counter[str] = Counter()
        self.restarts = 0
        self.events: list[tuple[float, str]] = []
        self.t0 = 0.0
        self.services: dict[str, Service] = {}

    # -- set-up ------------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(PASSED_ENV)}
        env["FLINKTRADE_CONFIG"] = str(self.workdir / "flinktrade.toml")
        env["SLACK_WEBHOOK_URL"] = self.slack.webhook_url("#alerts")
        return env

    def write_config(self) -> None:
        (self.workdir / "flinktrade.toml").write_text(
            CONFIG.format(
                state=self.state,
                servers=self.kafka.bootstrap_servers,
                partitions=self.opts.partitions,
                strategy=STRATEGY,
                fast=self.opts.fast,
                slow=self.opts.slow,
            )
        )

    def service(self, name: str, *args: str) -> Service:
        exe = str(Path(sys.executable).parent / "flinktrade")
        svc = Service(name, [exe, *args], self.env(), self.workdir)
        self.services[name] = svc
        svc.start()
        return svc

    def wait_job_running(self, job: Service, rest: FlinkRest, timeout_s: float = 300) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not job.alive():
                raise RuntimeError(f"the job exited at start: {job.tail()}")
            try:
                running = [j for j in rest.jobs() if j.get("state") == "RUNNING"]
            except REST_ERRORS:
                running = []
            if running:
                return str(running[0]["jid"])
            time.sleep(1.0)
        raise RuntimeError(f"the job did not reach RUNNING in {timeout_s:.0f}s: {job.tail()}")

    # -- the run -----------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        opts = self.opts
        self.kafka.up()
        self.slack.start()
        collector: Collector | None = None
        driver: subprocess.Popen[bytes] | None = None
        try:
            self.write_config()
            servers = self.kafka.bootstrap_servers
            bus.ensure_topics(
                KafkaSettings(bootstrap_servers=servers, partitions=opts.partitions),
                [t.name for t in topics.ALL],
            )
            job = self.service("job", "job", "run", "--from-earliest")
            rest = FlinkRest(job.pid)
            job_id = self.wait_job_running(job, rest)
            executor = self.service("executor", "execute", "--broker", "sim", "--from-earliest")
            self.service("notify", "notify", "--from-earliest")
            collector = Collector(servers)
            collector.start()
            self.t0 = time.time() + 2.0
            t0_ms = int(self.t0 * 1000)
            load_out = self.workdir / "load.json"
            with (self.workdir / "load.log").open("ab") as logf:
                driver = subprocess.Popen(
                    [
                        sys.executable, "-m", "bench.soak_load",
                        "--servers", servers,
                        "--topic", topics.TRADES.name,
                        "--rate", str(opts.rate),
                        "--duration", str(opts.duration),
                        "--symbols", str(opts.symbols),
                        "--malformed", str(opts.malformed),
                        "--seed", str(opts.seed),
                        "--t0-ms", str(t0_ms),
                        "--event-offset-ms", str(opts.event_offset_ms),
                        "--out", str(load_out),
                    ],
                    cwd=REPO, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                )  # fmt: skip
            faults = threading.Thread(target=self.faults, args=(executor, collector), daemon=True)
            if opts.faults:
                faults.start()
            while driver.poll() is None:
                self.sample(job, rest, job_id)
                time.sleep(SAMPLE_S)
            if driver.returncode != 0 or not load_out.is_file():
                raise RuntimeError(f"the load generator failed (exit {driver.returncode})")
            load = json.loads(load_out.read_text())
            log.info("load sent: %s records, late %s", load["sent"], load["sent_late"])
            caught_up_at = self.wait_caught_up(collector, load)
            if opts.faults:
                faults.join(timeout=120)
            self.wait_orders(collector)
            self.sample(job, rest, job_id)
            job_state = self.job_state(rest, job_id)
            alive = {name: svc.alive() for name, svc in self.services.items()}
            return self.report(load, collector.out, caught_up_at, job_state, alive)
        finally:
            if driver is not None and driver.poll() is None:
                driver.kill()
                driver.wait()
            for svc in reversed(list(self.services.values())):
                svc.stop()
            if collector is not None:
                collector.stop.set()
                collector.join(30)
            self.slack.stop()
            self.kafka.down()

    def sample(self, job: Service, rest: FlinkRest, job_id: str) -> None:
        self.samples.append((time.time() - self.t0, rss_bytes(job.pid)))
        state = self.job_state(rest, job_id)
        self.job_states[state] += 1
        try:
            self.restarts = max(self.restarts, rest.restarts(job_id))
        except REST_ERRORS as exc:
            log.debug("restarts: %s", exc)

    def job_state(self, rest: FlinkRest, job_id: str) -> str:
        try:
            return next((str(j["state"]) for j in rest.jobs() if j["jid"] == job_id), "GONE")
        except REST_ERRORS:
            return "UNREACHABLE"

    def faults(self, executor: Service, collector: Collector) -> None:
        """The fault round, relative to the start of the load: the broker at 30 %; then, once
        orders flow (or at 80 % at the latest), Slack errors for a minute (at most 20 % of the
        run) with an executor kill in the middle of them and one at their end."""
        d = self.opts.duration
        slack_s = min(60.0, 0.2 * d)
        self.sleep_until(0.30 * d)
        self.fault("broker")
        self.kafka.kill()
        time.sleep(5.0)
        self.kafka.up()
        while time.time() < self.t0 + 0.8 * d:
            with collector.out.lock:
                if collector.out.orders:
                    break
            time.sleep(1.0)
        start = time.time() - self.t0
        self.fault("slack429")
        self.slack.rate_limit(retry_after=1, times=10**9)
        self.sleep_until(start + slack_s / 2)
        self.fault("executor")
        executor.kill()
        executor.start()
        self.fault("slack500")
        self.slack.clear_faults()
        self.slack.server_error(500, times=10**9)
        self.sleep_until(start + slack_s)
        self.fault("slack_ok")
        self.slack.clear_faults()
        self.fault("executor")
        executor.kill()
        executor.start()

    def sleep_until(self, at_s: float) -> None:
        delay = self.t0 + at_s - time.time()
        if delay > 0:
            time.sleep(delay)

    def fault(self, what: str) -> None:
        self.events.append((round(time.time() - self.t0, 1), what))
        log.info("fault: %s", what)

    def wait_caught_up(
        self, collector: Collector, load: dict[str, Any]
    ) -> tuple[float, float] | None:
        """The wall times at which the last required bar and the last dead letter arrived (None:
        not all of them within ``drain_s``)."""
        required = must_close(load)
        deadline = max(time.time(), float(load["flushed"])) + self.opts.drain_s
        out = collector.out
        while time.time() < deadline:
            with out.lock:
                bars_done = required <= out.bar_seen.keys()
                dead_done = len(out.dead) >= load["sent_malformed"]
            if bars_done and dead_done:
                with out.lock:
                    last_bar = max((out.bar_seen[k] for k in required), default=0.0)
                    return last_bar, out.last_dead_at
            time.sleep(0.2)
        return None

    def wait_orders(self, collector: Collector, timeout_s: float = 60.0) -> None:
        """Until every signal read has an order event (or ``timeout_s``)."""
        out = collector.out
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            with out.lock:
                want = {s["id"] for s in out.signals}
                have = {o.get("signal_id") for o in out.orders}
            if want <= have:
                return
            time.sleep(0.5)

    # -- the verdict -------------------------------------------------------------------------------

    def report(
        self,
        load: dict[str, Any],
        got: Collected,
        caught_up_at: tuple[float, float] | None,
        job_state: str,
        alive: dict[str, bool],
    ) -> dict[str, Any]:
        opts = self.opts
        with got.lock:
            bars = compare_bars(load, got.bars)
            expected, ties = reference_signals(load, opts.fast, opts.slow, must_close(load))
            signals = compare_signals(expected, ties, got.signals, STRATEGY)
            orders = compare_orders(got.signals, got.orders, got.fills)
            dead = compare_dead_letters(load, got.dead, topics.TRADES.name)
            alerts = dict(got.alerts)
        load_s = float(load["load_end"]) - self.t0
        mark = min(120.0, 0.2 * opts.duration)
        during = [(t, r) for t, r in self.samples if t <= load_s]
        at_mark = next((r for t, r in during if t >= mark), None)
        at_end = during[-1][1] if during else None
        growth = None if not at_mark or at_end is None else at_end / at_mark - 1
        end = float(load["load_end"])
        lag = None if caught_up_at is None else [round(t - end, 2) for t in caught_up_at]
        catch_up = None if lag is None else max(lag)
        executor, notifier = self.services["executor"], self.services["notify"]
        criteria = {
            "bars_equal_reference": bars["ok"],
            "signals_equal_reference": signals["ok"],
            "dead_letters_exact": dead["ok"],
            "orders_one_per_signal_fills_once": orders["ok"],
            "no_repeats_by_id": not (
                bars["wire_repeats"]
                or signals["wire_repeats"]
                or orders["order_event_wire_repeats"]
                or orders["fill_wire_repeats"]
            ),
            "nothing_unsent": load["send_failures"] == 0 and load["unacked_at_end"] == 0,
            "job_running": job_state == "RUNNING" and alive["job"],
            "notifier_same_pid": alive["notify"] and len(notifier.pids) == 1,
        }
        if opts.faults:
            criteria["executor_restarted_and_alive"] = alive["executor"] and len(executor.pids) == 3
        else:
            criteria["job_never_failed_over"] = self.restarts == 0
            criteria["executor_same_pid"] = alive["executor"] and len(executor.pids) == 1
            criteria["rss_growth_under_10pct"] = growth is not None and growth < RSS_GROWTH_MAX
            criteria["caught_up_within_10s"] = catch_up is not None and catch_up <= CATCH_UP_S
        return {
            "soak": "flinktrade",
            "mode": "faults" if opts.faults else "steady",
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": {"cores": os.cpu_count(), "mem_gb": _mem_gb()},
            "duration_s": opts.duration,
            "rate": opts.rate,
            "symbols": opts.symbols,
            "partitions": opts.partitions,
            "load": {
                "sent": load["sent"],
                "valid": load["sent_valid"],
                "malformed": load["sent_malformed"],
                "sent_late_over_100ms": load["sent_late"],
                "max_late_ms": load["max_late_ms"],
                "send_failures": load["send_failures"],
                "load_s": round(load_s, 1),
                "achieved_rate": round(load["sent"] / max(load_s, 1e-9)),
            },
            "bars": bars,
            "signals": signals,
            "orders": orders,
            "dead_letters": dead,
            "alerts": alerts,
            "job": {
                "state": job_state,
                "restarts": self.restarts,
                "states_seen": dict(self.job_states),
                "rss_mb_at_mark": _mb(at_mark),
                "rss_mark_s": mark,
                "rss_mb_end_of_load": _mb(at_end),
                "rss_growth_pct": None if growth is None else round(100 * growth, 1),
            },
            "catch_up_s": catch_up,
            "catch_up_bars_s": None if lag is None else lag[0],
            "catch_up_dead_letters_s": None if lag is None else lag[1],
            "services": {
                name: {"alive": alive[name], "pids": len(svc.pids)}
                for name, svc in self.services.items()
            },
            "slack": dict(self.slack_counter.answers),
            "faults": self.events,
            "workdir": str(self.workdir),
            "criteria": criteria,
            "pass": all(criteria.values()),
        }


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _mem_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    opts = Options.parse(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s soak %(message)s", stream=sys.stderr
    )
    soak = Soak(opts)
    try:
        result = soak.run()
    except Exception as exc:
        log.exception("soak failed")
        result = {
            "soak": "flinktrade",
            "pass": False,
            "error": str(exc)[:1000],
            "workdir": str(soak.workdir),
        }
    # Which criterion failed, with its figures: in the JSON line and as the log's last lines
    # (`make soak` shows the log's tail when the soak fails).
    result["failed"] = [] if result.get("pass") else failed_criteria(result)
    for line in result["failed"]:
        log.error("soak FAILED %s", line)
    if opts.workdir is None and result.get("pass"):
        shutil.rmtree(soak.workdir, ignore_errors=True)
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 0 if result.get("pass") else 1


if __name__ == "__main__":
    sys.exit(main())
