"""``flinktrade demo``: the whole system on one machine, no keys, no network.

Creates the topics, runs the simulator into ``market.trades``/``market.news`` at a real-time pace,
the job (in a local MiniCluster, or on a session cluster), the executor, the notifier (console, or
Slack when configured) and the API with its dashboard, shows what flows, and on exit (duration
elapsed or Ctrl-C) stops all of them and returns the counts it read back from the topics for this
run (end offsets now minus end offsets at start); at the end of the duration it first waits (at
most ``DRAIN_MAX_S``) for the job's bars to catch up with the trades sent. The broker is the CLI's
business: ``flinktrade demo`` starts the embedded one if it does not run, and stops it afterwards.

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
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Any, Protocol, TypeVar

from flinktrade import bus, topics
from flinktrade.bus import KafkaException, TopicPartition
from flinktrade.config import Settings
from flinktrade.errors import ConfigError, FlinktradeError, TransientError
from flinktrade.ingest.simulator import MarketSimulator, SimulatorFeed
from flinktrade.notify.console import ConsoleSink
from flinktrade.notify.routing import build_routing
from flinktrade.notify.service import Notifier
from flinktrade.pipeline.job import JobIO, JobOptions
from flinktrade.pipeline.job import run as run_job

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


def last_event_ts(bootstrap_servers: bus.Servers, topic: str) -> int | None:
    """The largest record timestamp among the last record of each partition."""
    with bus.consuming(bootstrap_servers, "flinktrade-demo-c") as consumer:
        latest = None
        for tp in bus.end_offsets(consumer, topic):
            if tp.offset == 0:
                continue
            consumer.assign([TopicPartition(topic, tp.partition, tp.offset - 1)])
            msg = consumer.poll(5.0)
            if msg is not None and not msg.error():
                latest = max(latest or 0, msg.timestamp()[1])
        return latest


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


def demo_settings(settings: Settings) -> Settings:
    """The settings the demo runs with: the executor's clock-based limits scaled to demo time.

    The simulator runs ``time_scale`` times faster than the clock (300x by default), so strategies
    signal that much more often per wall-clock minute than they would live. The order-rate limit
    and the runaway halt are scaled by the same factor, and the market is open all day. The demo's
    single broker has no leader fail-over to wait out, so a trades partition that no simulated
    symbol lands on is let go after 5 s rather than the production 30 s. The watermark's bound is
    not scaled (docs/reliability.md, "Late trades in the demo", says why and what that costs)."""
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
        update={"idle_timeout_ms": min(settings.job.idle_timeout_ms, 5_000)}
    )
    return settings.model_copy(
        update={
            "job": job,
            "execution": execution.model_copy(
                update={"risk": risk, "group_id": f"{execution.group_id}-demo"}
            ),
        }
    )


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
) -> dict[str, Any]:
    """Run the demo until ``duration_s`` passes or ``stop`` is set; return the summary counts.

    Notifications (signals, alerts, orders, fills) go to Slack when it is configured, else they
    are printed to ``notices`` (stderr by default). Signals become orders at ``broker`` (``sim``,
    or ``alpaca`` for Alpaca paper trading or a fake of it). The API and dashboard are served on
    ``api_port`` (default: the configured one; 0 picks a free port). The job runs in an
    in-process MiniCluster, or on the Flink cluster whose REST endpoint is ``jobmanager``
    (``host:port``; checkpoints then go to the cluster's checkpoint directory).

    Raises ``ServiceDied`` (after stopping the others) when a service dies while the demo runs.
    """
    stop = stop or threading.Event()
    fault = fault_target()
    settings = demo_settings(settings)
    servers = settings.kafka
    bus.ensure_topics(settings.kafka, [t.name for t in topics.ALL])
    before = _patiently(lambda: topic_totals(servers, SUMMARY_TOPICS))

    sim = settings.simulator
    last = _patiently(lambda: last_event_ts(servers, topics.TRADES.name))
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
    )
    notifier = DemoNotifier(settings, notices or sys.stderr, fault=fault == "notifier")
    executor = DemoExecutor(settings, broker, fault=fault == "executor")
    io = JobIO.from_settings(settings, group_id=f"{settings.job.group_id}-demo")
    where: dict[str, Any] = {} if jobmanager is None else {"jobmanager": jobmanager}
    if jobmanager is not None:
        where["checkpoint_dir"] = None
    options = JobOptions.from_settings(settings, name="flinktrade-demo", **where)
    try:
        job = DemoJob(run_job(io, options, wait=False))
    except FlinktradeError:
        raise
    except Exception as exc:  # the planner or the cluster refused the job
        log.debug("the job did not start", exc_info=True)
        raise ServiceDied("job", f"it did not start: {describe(exc)}") from None
    api: DemoApi | None = None
    services: list[Supervised] = [job, notifier, executor]
    failed = False
    try:
        notifier.start()
        executor.start()
        log.info("demo notifications go to %s; orders to the %s broker", notifier.where, broker)
        api = _start_api(settings, notifier, api_port, on_dashboard)
        if api is not None:
            services.append(api)
        started = time.monotonic()
        feed.start()
        services.append(feed)
        _inject(fault, job, api)
        _follow(feed, services, servers, before, duration_s, started, on_progress, stop)
        check_services(services)  # one that died in the last second
    except ServiceDied:
        failed = True
        raise
    finally:
        if api is not None:
            api.stop()
        feed.stop()
        if not failed:
            _drain(settings, servers, stop)
        job.cancel()
        executor.stop()
        notifier.stop()
    after = _patiently(lambda: topic_totals(servers, SUMMARY_TOPICS))
    summary: dict[str, Any] = {k: after[k] - before[k] for k in SUMMARY_TOPICS}
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
        last_trade = last_event_ts(servers, topics.TRADES.name)
        # the last bar that can close ends up to a minute before the bound; another minute of slack
        target = None if last_trade is None else last_trade - bound - 2 * 60_000
        waiting = False
        while target is not None and not stop.is_set() and time.monotonic() < deadline:
            last_bar = last_event_ts(servers, topics.ANALYTICS_BARS.name)
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
