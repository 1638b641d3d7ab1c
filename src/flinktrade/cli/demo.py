"""``flinktrade demo``: broker, simulator, job, executor, notifier and dashboard on one machine.

It runs every stage at once, so it belongs to none: the root CLI registers it like a stage
(``register(app)``); the work itself is ``flinktrade.demo.run_demo``.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from flinktrade.cli.options import uses_local_broker
from flinktrade.config import Settings, load_settings
from flinktrade.errors import ConfigError
from flinktrade.infra.cli import flink_cluster as local_flink_cluster
from flinktrade.infra.cli import local_broker

if TYPE_CHECKING:
    from flinktrade.infra.kafka import LocalKafka

console = Console(stderr=True)
out = Console()


def register(root: typer.Typer) -> None:
    """Add ``flinktrade demo`` to the main CLI."""
    root.command("demo")(demo)


def demo(
    duration: Annotated[
        float | None,
        typer.Option(min=1, help="Stop by itself after this many seconds (default: until Ctrl-C)."),
    ] = None,
    broker: Annotated[
        str,
        typer.Option(
            help="Where orders go: sim (simulated fills) or alpaca (paper trading, or a fake "
            "of it via APCA_API_BASE_URL)."
        ),
    ] = "sim",
    api_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port of the API and dashboard (0: any free port)."),
    ] = None,
    flink_cluster: Annotated[
        bool,
        typer.Option(
            help="Run the job on the local Flink session cluster (started if it is not running, "
            "left running; `infra down` stops it) instead of an in-process MiniCluster."
        ),
    ] = False,
    bracket: Annotated[
        bool,
        typer.Option(
            envvar="FLINKTRADE_DEMO_BRACKET",
            help="Also run the bracketed example strategy (examples/bracket_strategy.py: limit "
            "entries with stop-loss and take-profit exits) beside the configured strategies.",
        ),
    ] = True,
) -> None:
    """Broker + simulator + Flink job + executor + notifier + dashboard, live; ends with JSON.

    The embedded broker is started if it does not run and stopped at the end; one that already
    ran is reused and left running. A service that dies ends the demo with one line and exit 1."""
    from flinktrade.demo import demo_settings, fault_target

    if broker not in ("sim", "alpaca"):
        raise ConfigError(f"--broker must be sim or alpaca, not {broker!r}")
    settings = load_settings()
    fault_target()  # a wrong test hook is refused before anything starts
    launching: _Launch | None = None
    if uses_local_broker(settings):
        local = local_broker(demo_settings(settings))  # the demo's broker: C1 unless set
        status = local.status()
        if status.running:
            console.print(
                f"reusing the Kafka broker already running on {status.bootstrap_servers} "
                f"(pid {status.pid}); the demo leaves it running",
                soft_wrap=True,
                highlight=False,
            )
        else:  # started now, waited for while the job is being built (``run_demo``)
            launching = _Launch(local)
    try:
        ready: Callable[[], object] = launching.wait if launching is not None else _no_wait
        _demo(settings, duration, broker, api_port, flink_cluster, bracket, ready)
    finally:
        if launching is not None:
            launching.join()
            launching.broker.down()
            if launching.error is None:  # else it never ran: the error says why
                console.print(
                    f"kafka broker on {launching.broker.bootstrap_servers} stopped "
                    "(the demo started it)"
                )


class _Launch:
    """The broker's launch on a thread (on a new state folder it formats the storage first, a JVM
    of its own: ~0.7 s), so that the job's build, the slowest start of the demo, begins at once;
    ``wait`` raises what the launch raised (``InfraError``: its port is taken), else waits for
    the broker to accept connections."""

    def __init__(self, broker: LocalKafka) -> None:
        self.broker = broker
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="demo-broker-launch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.broker.launch()
        except BaseException as exc:  # raised on the demo's thread by ``wait``
            self.error = exc

    def join(self) -> None:
        self._thread.join()

    def wait(self) -> object:
        self.join()
        if self.error is not None:
            raise self.error
        return self.broker.wait_up()


def _no_wait() -> None:
    """The broker was up already."""


def _demo(
    settings: Settings,
    duration: float | None,
    broker: str,
    api_port: int | None,
    flink_cluster: bool,
    bracket: bool,
    broker_ready: Callable[[], object],
) -> None:
    from flinktrade.demo import DemoProgress, run_demo, with_bracket_example

    if bracket:  # before a session cluster starts: its TaskManagers take PYTHONPATH from here
        settings = with_bracket_example(settings)
    jobmanager = None
    if flink_cluster:
        flink = local_flink_cluster(settings).up()  # refuses a host off loopback
        jobmanager = settings.job.jobmanager
        console.print(
            f"flink session cluster: web UI {flink.rest_url} (`flinktrade infra down` stops it)",
            soft_wrap=True,
        )
    console.print(
        f"[bold]flinktrade demo[/]: {settings.simulator.symbols} simulated symbols, "
        f"strategies {', '.join(s.name for s in settings.strategies)}, "
        f"Kafka {settings.kafka.bootstrap_servers}"
        + (f", {duration:.0f}s" if duration else ", Ctrl-C to stop"),
        soft_wrap=True,
    )

    def progress(p: DemoProgress) -> None:
        c = p.counts
        console.print(
            f"[dim]{p.elapsed_s:4.0f}s[/] trades {c['trades']:,} ({p.trades_per_s:,.0f}/s) "
            f"news {c['news']} bars {c['bars']:,} signals {c['signals']} alerts {c['alerts']} "
            f"orders {c['orders']} fills {c['fills']} deadletter {c['deadletter']}",
            soft_wrap=True,
        )

    summary = run_demo(
        settings,
        duration,
        progress,
        sys.stderr,
        broker=broker,
        api_port=api_port,
        on_dashboard=lambda line: console.print(f"[bold]{line}[/]", soft_wrap=True),
        jobmanager=jobmanager,
        broker_ready=broker_ready,
    )
    out.print(json.dumps(summary), soft_wrap=True, highlight=False)
