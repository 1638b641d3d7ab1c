"""``flinktrade demo``: the whole system on one machine, no keys, no network.

Creates the topics, runs the simulator into ``market.trades``/``market.news`` at a real-time pace,
the job (in a local MiniCluster, or on a session cluster), the executor, the notifier (console, or
Slack when configured) and the API with its dashboard, shows what flows, and on exit (duration
elapsed or Ctrl-C) stops all of them and returns the counts it read back from the topics for this
run (end offsets now minus end offsets at start); at the end of the duration it first waits (at
most ``DRAIN_MAX_S``) for the job's bars to catch up with the trades sent. The broker is the CLI's
business: ``flinktrade demo`` starts the embedded one if it does not run, and stops it afterwards.

The order model in the demo: ``with_bracket_example`` adds the bracketed example strategy
(``examples/bracket_strategy.py``: day limit entries with a stop loss and a take profit) beside
the configured ones, so a run shows limit entries, their exit legs and exits filling; the summary
counts them from ``trading.orders`` (``order_model_counts``). With ``--broker alpaca`` and a
``APCA_API_BASE_URL`` on loopback (a fake of Alpaca), ``FakePrices`` posts the simulator's prices
to the fake, so its limit and stop orders fill as the price moves.

Supervision: every service the demo runs is a ``Supervised`` (a name, ``alive``, ``error``): the
notifier and the executor as a ``ServiceThread`` (the service on a thread of its own; its error is
what ended the thread), the job through its ``JobClient``, the API through its server's thread, the
simulator as its ``SimulatorFeed``. The demo's loop checks them each second, and one that died ends
the demo with ``ServiceDied`` (one line: which service and why; the CLI exits 1) instead of a
normal summary. A broker that stays unreachable (``BROKER_GRACE_S``) ends the demo the same way.
``FLINKTRADE_DEMO_FAULT`` names a service to break on purpose (``simulator``, ``executor``,
``notifier``, ``api``, ``job``), for the tests of that supervision.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpx

from flinktrade import bus, events, topics
from flinktrade.bus import KafkaException
from flinktrade.config import JitCompiler, Settings, StrategySettings
from flinktrade.errors import ConfigError, FlinktradeError, TransientError
from flinktrade.infra.process import is_loopback
from flinktrade.ingest.simulator import MarketSimulator, SimulatorFeed
from flinktrade.notify.console import ConsoleSink
from flinktrade.notify.routing import build_routing
from flinktrade.notify.service import Notifier
from flinktrade.pipeline.analytics import SymbolModel
from flinktrade.pipeline.job import JobIO, JobOptions, prepare

log = logging.getLogger(__name__)
_T = TypeVar("_T")

SUMMARY_TOPICS = {
    "trades": topics.TRADES.name,
    "news": topics.NEWS.name,
    "bars": topics.ANALYTICS_BARS.name,
    "signals": topics.SIGNALS.name,
    "alerts": topics.ALERTS.name,
    "orders": topics.ORDERS.name,
    "fills": topics.FILLS.name,
    "deadletter": topics.DEADLETTER.name,
}


FAULT_ENV = "FLINKTRADE_DEMO_FAULT"
"""Test hook: the name of a demo service to break on purpose (see the module docstring)."""

SERVICES = ("simulator", "executor", "notifier", "api", "job")

BROKER_GRACE_S = 30.0
"""How long the broker may be unreachable before the demo gives up on it."""
DRAIN_MAX_S = 90.0
"""At the end, how long the demo waits at most for the job's bars to catch up with the trades."""


class ServiceDied(FlinktradeError):
    """A service of the demo stopped while the demo ran: which one, and why, in one line."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"demo stopped: the {service} died: {reason}")
        self.service = service
        self.reason = reason


class InjectedFault(RuntimeError):
    """The failure ``FLINKTRADE_DEMO_FAULT`` asks for."""

    def __init__(self) -> None:
        super().__init__(f"fault injected by {FAULT_ENV}")


class Supervised(Protocol):
    """A service the demo watches."""

    @property
    def name(self) -> str: ...

    @property
    def alive(self) -> bool: ...

    @property
    def error(self) -> BaseException | None: ...


def check_services(services: Sequence[Supervised]) -> None:
    """Raise ``ServiceDied`` for the first service that failed or stopped by itself."""
    for service in services:
        alive = service.alive  # first: a service may find out that it failed by looking
        error = service.error
        if error is not None:
            raise ServiceDied(service.name, describe(error))
        if not alive:
            raise ServiceDied(service.name, "it stopped without an error")


def describe(error: BaseException) -> str:
    """An exception as one short line: its type and the first line of its message (for an error
    from the JVM, the Java exception's, not py4j's "An error occurred while calling ...")."""
    java = getattr(error, "java_exception", None)
    if java is not None:
        with contextlib.suppress(Exception):  # the gateway may be gone already
            lines = str(java.toString()).strip().splitlines()
            return _bounded(lines[0] if lines else type(error).__name__)
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    kind = type(error).__name__
    return _bounded(f"{kind}: {text}" if text else kind)


def _bounded(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def fault_target(environ: dict[str, str] | None = None) -> str | None:
    """The service ``FLINKTRADE_DEMO_FAULT`` names, if any (a name it does not know is refused)."""
    value = (environ if environ is not None else dict(os.environ)).get(FAULT_ENV, "").strip()
    if not value:
        return None
    if value not in SERVICES:
        raise ConfigError(f"{FAULT_ENV} must be one of {', '.join(SERVICES)}, not {value!r}")
    return value


def topic_totals(bootstrap_servers: bus.Servers, names: dict[str, str]) -> dict[str, int]:
    """Sum of end offsets per topic (records ever written, transaction markers included)."""
    with bus.consuming(bootstrap_servers, "flinktrade-demo-c") as consumer:
        return {
            key: sum(tp.offset for tp in bus.end_offsets(consumer, topic))
            for key, topic in names.items()
        }


class ServiceThread:
    """A service's blocking ``serve(stop)`` on a daemon thread, as the demo watches it: ``alive``
    while the thread runs, ``error`` what ended it (``InjectedFault`` first thing when ``fault``),
    ``stop()`` sets the stop event and waits for the thread (at most a minute)."""

    name: str

    def __init__(self, fault: bool = False) -> None:
        self.fault = fault
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def serve(self, stop: threading.Event) -> None:
        """The service itself: runs until ``stop`` is set (or fails)."""
        raise NotImplementedError

    def _run(self) -> None:
        try:
            if self.fault:
                raise InjectedFault
            self.serve(self._stop)
        except BaseException as exc:  # surfaced by the demo's supervision
            self.error = exc
            log.debug("%s failed", self.name, exc_info=True)


class DemoNotifier(ServiceThread):
    """The notifier of ``flinktrade notify`` on a thread: Slack when configured, else ``file``."""

    name = "notifier"

    def __init__(self, settings: Settings, file: IO[str], fault: bool = False) -> None:
        super().__init__(fault)
        notify = settings.notify.model_copy(
            update={"group_id": f"{settings.notify.group_id}-demo", "start_from": "latest"}
        )
        routing = build_routing(notify, console=lambda: ConsoleSink(file))
        self.where = ", ".join(sorted({s.description for s in routing.sinks.values()}))
        self.notifier = Notifier(notify, settings.kafka, routing=routing)

    def start(self, timeout_s: float = 30.0) -> None:
        """Start, and wait until the topics are assigned so no early notice is skipped."""
        super().start()
        deadline = time.monotonic() + timeout_s
        while not self.notifier.assigned.wait(0.1):
            if self.error is not None:
                return  # the demo's supervision reports it
            if time.monotonic() > deadline:
                log.warning("notifier not assigned its topics yet; going on")
                return

    def serve(self, stop: threading.Event) -> None:
        self.notifier.run(stop)


class DemoExecutor(ServiceThread):
    """The executor of ``flinktrade execute`` on a thread."""

    name = "executor"

    def __init__(self, settings: Settings, broker: str, fault: bool = False) -> None:
        super().__init__(fault)
        self.settings = settings
        self.broker = broker

    def serve(self, stop: threading.Event) -> None:
        from flinktrade.execution.loop import run_executor

        run_executor(self.settings, stop, self.broker)


class DemoJob:
    """The Flink job, watched through its ``JobClient``: a job that failed, finished or was
    cancelled by anyone but the demo is a dead service. ``RESTARTING`` still counts as alive."""

    name = "job"
    _ENDED = frozenset({"FAILED", "CANCELED", "CANCELLING", "FINISHED", "SUSPENDED"})

    def __init__(self, client: Any) -> None:
        self.client = client
        self.state = "CREATED"
        self.error: BaseException | None = None

    @property
    def alive(self) -> bool:
        if self.error is not None:
            return False
        try:
            self.state = str(self.client.get_job_status().result().name)
        except Exception as exc:  # the MiniCluster or the cluster's REST API is gone
            self.error = exc
            return False
        if self.state in self._ENDED:
            self.error = RuntimeError(f"the Flink job is {self.state}")
            return False
        return True

    def cancel(self) -> None:
        try:
            self.client.cancel().result()
        except Exception as exc:  # the MiniCluster may already be gone after Ctrl-C
            log.debug("job cancel: %s", exc)


class JobBuild:
    """The job's JVM, MiniCluster environment and plan, made on a thread of its own while the
    broker comes up and the other services start (they need no broker: the job first reads its
    topics when it runs); ``submit`` starts it once they are all ready.

    Python's cyclic garbage collector is off from the start of the build to the submission
    (``submit`` or ``close`` turn it back on). A collection on another thread can finalise py4j
    proxies of the build, and py4j sends each finaliser's message on a connection of its own
    when the build's is busy; the build's next calls may then go out on that connection, which
    the JVM serves on another thread, where Flink's planner finds none of its thread-local state
    ("NullPointerException: metadataHandlerProvider", seen once in a CI run). With one Python
    thread using the gateway at a time, py4j keeps one connection and the JVM one thread."""

    def __init__(self, io: JobIO, options: JobOptions) -> None:
        SymbolModel(options.strategies, options.analytics)  # a bad strategy setting: at once
        self.io, self.options = io, options
        self._env: Any = None
        self._error: BaseException | None = None
        self._collector_was_on = gc.isenabled()
        gc.disable()
        self._thread = threading.Thread(target=self._build, name="demo-job-build", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """The garbage collector back as it was (once the job is submitted, or will not be)."""
        if self._collector_was_on:
            self._collector_was_on = False
            gc.enable()

    def _build(self) -> None:
        try:
            self._env = prepare(self.io, self.options)
        except BaseException as exc:  # handed to the demo's thread by ``submit``
            self._error = exc

    def submit(self) -> DemoJob:
        """Wait for the build, then start the job; ``ServiceDied`` if it cannot be built or
        started (a ``FlinktradeError``, e.g. a bad strategy setting, as it is)."""
        self._thread.join()
        try:
            if self._error is not None:
                raise self._error
            return DemoJob(self._env.execute_async(self.options.name))
        except FlinktradeError:
            raise
        except Exception as exc:  # the planner or the cluster refused the job
            log.debug("the job did not start", exc_info=True)
            raise ServiceDied("job", f"it did not start: {describe(exc)}") from None
        finally:
            self.close()


class DemoApi:
    """The API and dashboard server, watched through its thread."""

    name = "api"
    error: BaseException | None = None

    def __init__(self, server: Any) -> None:
        self.server = server

    @property
    def alive(self) -> bool:
        return bool(self.server.alive)

    def stop(self) -> None:
        self.server.stop()


DEMO_SIDE_IDLE_MS = 300
"""The demo's ``side_idle_timeout_ms``. With the production 2 s, the first bars came ~2.6 s after
the job's tasks were running, ~2 s of it waiting for the (empty) provider-bar input to be let go."""


def demo_settings(settings: Settings) -> Settings:
    """The settings the demo runs with: the executor's clock-based limits scaled to demo time.

    The simulator runs ``time_scale`` times faster than the clock (300x by default), so strategies
    signal that much more often per wall-clock minute than they would live. The order-rate limit
    and the runaway halt are scaled by the same factor, and the market is open all day. The demo's
    single broker has no leader fail-over to wait out, so a trades partition that no simulated
    symbol lands on is let go after 5 s rather than the production 30 s, and the news and
    provider-bar inputs (the simulator writes no provider bars, and its news comes with its trades)
    after ``DEMO_SIDE_IDLE_MS`` rather than 2 s: the job's first bars wait for that once, at the
    start. The simulator writes no provider bars, so the job reads none unless
    ``job.provider_bars`` is set explicitly (an empty input held the first bars back ~1-2 s
    more, its idle timeout and a Python operator more to start; docs/benchmarks.md, session 21).
    The watermark's bound is not scaled (docs/reliability.md, "Late trades in the demo", says
    why and what that costs). The embedded broker the demo starts compiles with C1 only unless
    ``broker.jit`` is set explicitly: it accepted connections 1.5-5 s sooner and the first signal
    came 1.3-8.8 s sooner in alternated demos (docs/benchmarks.md, session 28)."""
    scale = max(1.0, settings.simulator.time_scale)
    execution = settings.execution
    risk = execution.risk.model_copy(
        update={
            "allow_outside_market_hours": True,
            "signal_age_from_event_time": False,  # simulated event time is not the clock
            "max_orders_per_minute": int(execution.risk.max_orders_per_minute * scale),
            "halt_after_rate_denials": int(execution.risk.halt_after_rate_denials * scale),
        }
    )
    job = settings.job.model_copy(
        update={
            "idle_timeout_ms": min(settings.job.idle_timeout_ms, 5_000),
            "side_idle_timeout_ms": min(settings.job.side_idle_timeout_ms, DEMO_SIDE_IDLE_MS),
            "provider_bars": "provider_bars" in settings.job.model_fields_set
            and settings.job.provider_bars,
        }
    )
    broker = settings.broker
    if "jit" not in broker.model_fields_set:
        broker = broker.model_copy(update={"jit": JitCompiler.C1})
    return settings.model_copy(
        update={
            "job": job,
            "broker": broker,
            "execution": execution.model_copy(
                update={"risk": risk, "group_id": f"{execution.group_id}-demo"}
            ),
        }
    )


BRACKET_STRATEGY = "examples.bracket_strategy:BracketBreakout"
"""The bracketed example strategy the demo runs beside the configured ones (``--no-bracket``:
not)."""
BRACKET_PARAMS: dict[str, float | int | str] = {
    "lookback": 20,
    "cooldown": 10,
    # Tighter than the example's 2 % / 4 %, so exits happen within a minute of demo: with the
    # default simulator (2,000 trades/s over 8 symbols, 300x) a symbol prints ~250 trades per
    # wall-clock second, each moving its log price by ~0.04 % (calm regime). A random walk leaves a
    # band of -a/+b after ~a*b/0.04 %^2 trades: ~940 trades (~4 s) for 1 % / 1.5 %, ~5,000 (~20 s,
    # a couple of exits per symbol and run) for 2 % / 4 %. Both exits stay likely (the stop first
    # about 60 % of the time), so a run shows take profits and stop losses.
    "stop_loss_pct": 1.0,
    "take_profit_pct": 1.5,
}


def examples_root() -> Path | None:
    """The folder holding ``examples/`` (the repository root, in the ``pip install -e`` layout
    ``make setup`` makes), or None where flinktrade is installed without its repository."""
    root = Path(__file__).resolve().parents[2]  # src/flinktrade/demo.py -> the repository root
    return root if (root / "examples" / "bracket_strategy.py").is_file() else None


def with_bracket_example(settings: Settings) -> Settings:
    """``settings`` with the bracketed example strategy added beside the configured strategies,
    on every symbol, with ``BRACKET_PARAMS`` (unchanged when a strategy of that name is
    configured already, or when ``examples/`` is not there: then one warning says so).

    ``examples/`` is no installed package, so its folder is put on ``sys.path`` (the job's
    client imports the strategy to build it) and on ``PYTHONPATH``, which the job hands to the
    JVM-embedded interpreter of its Python workers (``pipeline.job``) and the local session
    cluster to its TaskManagers when it starts them: ``make demo`` works from any directory."""
    if any(s.name == BRACKET_STRATEGY for s in settings.strategies):
        return settings
    root = examples_root()
    if root is None:
        log.warning("the bracketed example strategy is left out: examples/ is not installed")
        return settings
    where = str(root)
    if where not in sys.path:
        sys.path.append(where)
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if where not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([*paths, where])
    bracket = StrategySettings(name=BRACKET_STRATEGY, params=dict(BRACKET_PARAMS))
    return settings.model_copy(update={"strategies": [*settings.strategies, bracket]})


_PLACED = frozenset(
    {
        events.OrderStatus.NEW,
        events.OrderStatus.ACCEPTED,
        events.OrderStatus.PARTIALLY_FILLED,
        events.OrderStatus.FILLED,
        events.OrderStatus.CANCELED,
        events.OrderStatus.EXPIRED,
    }
)
"""States an order reaches only once a broker took it (not pending, denied or rejected)."""
_WITH_EXITS = frozenset({events.OrderClass.BRACKET.value, events.OrderClass.OTO.value})


def order_model_counts(orders: Iterable[events.OrderEvent]) -> dict[str, Any]:
    """What the order model did, from a run's ``trading.orders`` records (each order counted
    once, however many of its states were written): ``bracket_entries`` placed at a broker (entries
    carrying exits: order class bracket or OTO) and how many of them filled
    (``bracket_entries_filled``), ``exit_legs`` placed, and ``exits_filled`` by leg
    (``take_profit``, ``stop_loss``, ``trailing_stop``: the exit reason)."""
    entries: set[str] = set()
    entries_filled: set[str] = set()
    legs: set[str] = set()
    exits_filled: dict[str, str] = {}
    for order in orders:
        if order.status not in _PLACED:
            continue
        coid = order.client_order_id
        filled = order.status is events.OrderStatus.FILLED
        if order.parent_client_order_id is not None:
            legs.add(coid)
            if filled:
                exits_filled[coid] = order.leg or "exit"
        elif order.order_class in _WITH_EXITS:
            entries.add(coid)
            if filled:
                entries_filled.add(coid)
    by_reason: dict[str, int] = {}
    for reason in sorted(exits_filled.values()):
        by_reason[reason] = by_reason.get(reason, 0) + 1
    return {
        "bracket_entries": len(entries),
        "bracket_entries_filled": len(entries_filled),
        "exit_legs": len(legs),
        "exits_filled": by_reason,
    }


def order_end_offsets(servers: bus.Servers) -> dict[int, int]:
    """The end offset of each partition of ``trading.orders``: where this run's orders start."""
    with bus.consuming(servers, "flinktrade-demo-c") as consumer:
        return {tp.partition: tp.offset for tp in bus.end_offsets(consumer, topics.ORDERS.name)}


def read_order_model(servers: bus.Servers, start: dict[int, int]) -> dict[str, Any]:
    """``order_model_counts`` of the orders written since ``start`` (``order_end_offsets``);
    a record that does not decode is skipped (the executor wrote it, the API dead-letters it)."""
    topic = topics.ORDERS.name
    decoded: list[events.OrderEvent] = []
    with bus.consuming(servers, "flinktrade-demo-c", read_committed=True) as consumer:
        ranges = {
            tp.partition: (start.get(tp.partition, 0), tp.offset)
            for tp in bus.end_offsets(consumer, topic)
        }
        for msg in bus.read_range(consumer, topic, ranges, what="the demo's orders"):
            try:
                decoded.append(events.decode(events.OrderEvent, msg.value() or b""))
            except events.DecodeError as exc:
                log.debug("demo summary: order record skipped: %s", exc)
    return order_model_counts(decoded)


class FakePrices(ServiceThread):
    """Feeds a loopback fake of Alpaca's trading API (``flinktrade testing fake-alpaca-trading``)
    the simulator's prices, so its limit and stop orders (entries and exit legs) fill when the
    price crosses them, as at Alpaca: reads ``market.trades`` from its end at start and posts
    each symbol's last price to the fake's control route (``POST /fake/prices``, not Alpaca's)
    at most every ``interval_s``. A record it cannot read is skipped (the job dead-letters it);
    a post that fails is logged and the next one tried."""

    name = "fake prices"
    PATH = "/fake/prices"

    def __init__(self, settings: Settings, base_url: str, interval_s: float = 0.1) -> None:
        super().__init__()
        self.settings = settings
        self.url = base_url.rstrip("/") + self.PATH
        self.interval_s = interval_s
        self.posted = 0
        self.failures = 0
        self.ready = threading.Event()

    @staticmethod
    def target(settings: Settings, broker: str) -> str | None:
        """The fake's base URL when the demo's orders go to a fake on loopback, else None (real
        Alpaca is never sent prices)."""
        url = settings.alpaca_api_base_url
        if broker != "alpaca" or not url:
            return None
        host = urlsplit(url).hostname
        return url if host is not None and is_loopback(host) else None

    def start(self, timeout_s: float = 30.0) -> None:
        """Start, and wait until the trades are assigned, so the first prices are not missed."""
        super().start()
        if not self.ready.wait(timeout_s) and self.error is None:
            log.warning("fake prices: not reading market.trades yet; going on")

    def serve(self, stop: threading.Event) -> None:
        key = self.settings.alpaca_api_key_id
        secret = self.settings.alpaca_api_secret_key
        headers = {
            "APCA-API-KEY-ID": key.get_secret_value() if key else "",
            "APCA-API-SECRET-KEY": secret.get_secret_value() if secret else "",
        }
        topic = topics.TRADES.name
        with (
            bus.consuming(self.settings.kafka, bus.unique_group_id("flinktrade-demo-prices")) as c,
            httpx.Client(headers=headers, timeout=5.0) as http,
        ):
            c.assign(bus.end_offsets(c, topic))
            self.ready.set()
            latest: dict[str, str] = {}
            next_post = time.monotonic()
            while not stop.is_set():
                for msg in c.consume(500, timeout=self.interval_s):
                    if msg.error() is None:
                        self._note(latest, msg.value())
                if latest and time.monotonic() >= next_post:
                    self._post(http, latest)
                    latest = {}
                    next_post = time.monotonic() + self.interval_s

    @staticmethod
    def _note(latest: dict[str, str], raw: bytes | None) -> None:
        try:
            trade = json.loads(raw or b"", parse_float=Decimal)
            symbol, price = str(trade["symbol"]), Decimal(trade["price"])
        except (ValueError, TypeError, KeyError, ArithmeticError):
            return  # not a trade: the job dead-letters it
        if price.is_finite() and price > 0:
            latest[symbol] = str(price)

    def _post(self, http: httpx.Client, prices: dict[str, str]) -> None:
        try:
            answer = http.post(self.url, json=prices)
            problem = "" if answer.is_success else f"HTTP {answer.status_code}"
        except httpx.HTTPError as exc:
            problem = type(exc).__name__
        if not problem:
            self.posted += 1
            return
        self.failures += 1
        if self.failures == 1 or self.failures % 100 == 0:
            log.warning("fake prices: posting to %s failed (%s)", self.url, problem)


@dataclass
class DemoProgress:
    elapsed_s: float
    trades: int
    trades_per_s: float
    counts: dict[str, int]


def run_demo(
    settings: Settings,
    duration_s: float | None,
    on_progress: Callable[[DemoProgress], None],
    notices: IO[str] | None = None,
    stop: threading.Event | None = None,
    broker: str = "sim",
    api_port: int | None = None,
    on_dashboard: Callable[[str], None] = lambda line: log.info("%s", line),
    jobmanager: str | None = None,
    broker_ready: Callable[[], object] = lambda: None,
) -> dict[str, Any]:
    """Run the demo until ``duration_s`` passes or ``stop`` is set; return the summary counts.

    Notifications (signals, alerts, orders, fills) go to Slack when it is configured, else they
    are printed to ``notices`` (stderr by default). Signals become orders at ``broker`` (``sim``,
    or ``alpaca`` for Alpaca paper trading or a fake of it). The API and dashboard are served on
    ``api_port`` (default: the configured one; 0 picks a free port). The job runs in an
    in-process MiniCluster, or on the Flink cluster whose REST endpoint is ``jobmanager``
    (``host:port``; checkpoints then go to the cluster's checkpoint directory).

    The job is built first, on a thread (``JobBuild``), while ``broker_ready`` waits for the
    Kafka broker (it raises if the broker cannot start) and the notifier and the executor start;
    the simulator's feed starts after them (its producer made as soon as the broker is up), then
    the job is submitted, and the API starts while the job's tasks start. The feed goes first so
    that the minutes it writes while the job is submitted and its tasks start are there when the
    job first reads: its strategies' first windows fill in one catch-up instead of at the
    simulator's pace (a first demo's first signal came ~2 s after its first bar when the feed
    started after the submission, 0.3-0.6 s with it before: docs/benchmarks.md, session 34).

    The summary holds the records each of ``SUMMARY_TOPICS`` gained, the order model's counts
    (``order_model_counts``) and ``duration_s``.

    Raises ``ServiceDied`` (after stopping the others) when a service dies while the demo runs.
    """
    stop = stop or threading.Event()
    fault = fault_target()
    settings = demo_settings(settings)
    servers = settings.kafka
    io = JobIO.from_settings(settings, group_id=f"{settings.job.group_id}-demo")
    where: dict[str, Any] = {} if jobmanager is None else {"jobmanager": jobmanager}
    if jobmanager is not None:
        where["checkpoint_dir"] = None
    options = JobOptions.from_settings(settings, name="flinktrade-demo", **where)
    building = JobBuild(io, options)  # the slowest start of all: begun first
    try:
        broker_ready()
        # made now, so that it has its idempotent producer id by the time the feed starts
        producer = bus.EventProducer(servers)
        bus.ensure_topics(settings.kafka, [t.name for t in topics.ALL])
        before = _patiently(lambda: topic_totals(servers, SUMMARY_TOPICS))
        orders_start = _patiently(lambda: order_end_offsets(servers))
        last = _patiently(lambda: bus.max_timestamp(servers, topics.TRADES.name))
    except BaseException:
        building.close()
        raise

    sim = settings.simulator
    start_ts = 1_704_205_800_000 if last is None else last - last % 60_000 + 120_000
    simulator = MarketSimulator(
        symbols=sim.symbols,
        seed=sim.seed,
        start_ts=start_ts,
        gap_ms=1000.0 * sim.time_scale / sim.trades_per_second,
        news=sim.news,
    )
    feed = SimulatorFeed(
        servers,
        simulator,
        sim.trades_per_second,
        fault=InjectedFault() if fault == "simulator" else None,
        producer=producer,
    )
    notifier = DemoNotifier(settings, notices or sys.stderr, fault=fault == "notifier")
    executor = DemoExecutor(settings, broker, fault=fault == "executor")
    fake_url = FakePrices.target(settings, broker)
    prices = None if fake_url is None else FakePrices(settings, fake_url)
    api: DemoApi | None = None
    job: DemoJob | None = None
    services: list[Supervised] = [notifier, executor]
    failed = False
    started = time.monotonic()
    try:
        if prices is not None:
            prices.start()
            services.append(prices)
            log.info("demo: the simulator's prices go to the fake Alpaca at %s", fake_url)
        notifier.start()
        executor.start()
        log.info("demo notifications go to %s; orders to the %s broker", notifier.where, broker)
        feed.start()  # before the submission: the job's first minutes are ready when it reads
        services.append(feed)
        job = building.submit()
        services.insert(0, job)
        started = time.monotonic()
        api = _start_api(settings, notifier, api_port, on_dashboard)  # while the tasks start
        if api is not None:
            services.append(api)
        _inject(fault, job, api)
        _follow(feed, services, servers, before, duration_s, started, on_progress, stop)
        check_services(services)  # one that died in the last second
    except ServiceDied:
        failed = True
        raise
    finally:
        building.close()  # when it never came to the submission
        if api is not None:
            api.stop()
        feed.stop()
        if not failed and job is not None:
            _drain(settings, servers, stop)
        if job is not None:
            job.cancel()
        executor.stop()
        if prices is not None:
            prices.stop()
        notifier.stop()
    after = _patiently(lambda: topic_totals(servers, SUMMARY_TOPICS))
    summary: dict[str, Any] = {k: after[k] - before[k] for k in SUMMARY_TOPICS}
    summary.update(_patiently(lambda: read_order_model(servers, orders_start)))
    summary["duration_s"] = round(time.monotonic() - started, 1)
    return summary


def _patiently(read: Callable[[], _T], timeout_s: float = 60.0) -> _T:
    """``read()``, tried again while it fails transiently: just-created topics have no leader
    for a moment, and a fresh broker on a busy machine takes its time to elect them."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return read()
        except (TransientError, KafkaException) as exc:
            if time.monotonic() > deadline:
                raise ServiceDied("Kafka broker", f"unreachable: {describe(exc)}") from None
            time.sleep(0.5)


def _inject(fault: str | None, job: DemoJob, api: DemoApi | None) -> None:
    """Break the job or the API as ``FLINKTRADE_DEMO_FAULT`` asks (threads break themselves)."""
    if fault == "job":
        log.info("%s: cancelling the job behind the demo's back", FAULT_ENV)
        job.cancel()
    elif fault == "api" and api is not None:
        log.info("%s: stopping the API server behind the demo's back", FAULT_ENV)
        api.stop()


def _start_api(
    settings: Settings,
    notifier: DemoNotifier,
    port: int | None,
    announce: Callable[[str], None],
) -> DemoApi | None:
    """The API and dashboard on a thread; the demo goes on without them if they cannot start."""
    from flinktrade.api.server import start_in_thread

    def slack_stats() -> dict[str, int]:
        stats = notifier.notifier.delivery_stats().values()
        return {
            "posts": sum(s.messages for s in stats),
            "rate_limited": sum(s.rate_limited for s in stats),
        }

    try:
        api = start_in_thread(settings, port=port, slack_stats=slack_stats)
    except FlinktradeError as exc:
        log.warning("dashboard not started: %s", exc)
        return None
    if api.generated:  # the one place a generated token is shown: the user needs it to log in
        announce(f"dashboard: {api.url}?token={api.token.get_secret_value()}")
    else:
        announce(f"dashboard: {api.url} (token: FLINKTRADE_API_TOKEN)")
    return DemoApi(api)


def _follow(
    feed: SimulatorFeed,
    services: Sequence[Supervised],
    servers: bus.Servers,
    before: dict[str, int],
    duration_s: float | None,
    started: float,
    on_progress: Callable[[DemoProgress], None],
    stop: threading.Event,
) -> None:
    unreachable_since: float | None = None
    try:
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if duration_s is not None and elapsed >= duration_s:
                break
            check_services(services)
            try:
                now = topic_totals(servers, SUMMARY_TOPICS)
            except (TransientError, KafkaException) as exc:  # slow, or gone: skip this line
                log.debug("progress skipped: %s", exc)
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > BROKER_GRACE_S:
                    raise ServiceDied(
                        "Kafka broker", f"unreachable for {BROKER_GRACE_S:.0f}s: {describe(exc)}"
                    ) from None
            else:
                unreachable_since = None
                counts = {k: now[k] - before[k] for k in now}
                rate = feed.produced_trades / elapsed if elapsed > 0 else 0.0
                on_progress(DemoProgress(elapsed, feed.produced_trades, rate, counts))
            stop.wait(1.0)
    except KeyboardInterrupt:
        log.info("interrupted: shutting down")


def _drain(settings: Settings, servers: bus.Servers, stop: threading.Event) -> None:
    """Before the job is cancelled: wait until its bars have caught up with the trades sent, at
    most ``DRAIN_MAX_S`` (a job that started slowly, as on a busy session cluster, is still reading
    them), then a moment more for the last bars' signals to reach the executor."""
    bound = settings.job.out_of_orderness_ms
    deadline = time.monotonic() + DRAIN_MAX_S
    try:
        last_trade = bus.max_timestamp(servers, topics.TRADES.name)
        # the last bar that can close ends up to a minute before the bound; another minute of slack
        target = None if last_trade is None else last_trade - bound - 2 * 60_000
        waiting = False
        while target is not None and not stop.is_set() and time.monotonic() < deadline:
            last_bar = bus.max_timestamp(servers, topics.ANALYTICS_BARS.name)
            if last_bar is not None and last_bar >= target:
                break
            if not waiting:
                log.info("waiting for the job to turn the trades sent into bars")
                waiting = True
            stop.wait(0.5)
    except (TransientError, KafkaException) as exc:  # the broker went: nothing more to wait for
        log.debug("drain: %s", exc)
    grace = bound / 1000 + 2.0
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and not stop.is_set():
        time.sleep(0.2)
