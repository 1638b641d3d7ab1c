"""``flinktrade``: one command with subcommands. Exit codes are decided here and only here.

0 ok; 1 unexpected failure, or a service of the demo died; 2 bad arguments or configuration
(including a Kafka address off loopback without ``kafka.allow_unauthenticated_remote``); 69 local
infrastructure could not be set up; 75 a dependency is unavailable for now (retry later).
"""

from __future__ import annotations

import importlib
import json
import logging
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flinktrade import __version__, bus, topics
from flinktrade.config import Delivery, LatencyProfile, Settings, load_settings, masked_dump
from flinktrade.errors import ConfigError, FlinktradeError, InfraError, TransientError

console = Console(stderr=True)
out = Console()
log = logging.getLogger("flinktrade")

app = typer.Typer(
    name="flinktrade",
    help="Real-time algorithmic trading on Kafka and Apache Flink.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
infra_app = typer.Typer(
    help="The local Kafka broker(s) and Flink session cluster.", no_args_is_help=True
)
job_app = typer.Typer(help="The Flink job.", no_args_is_help=True)
app.add_typer(infra_app, name="infra")
app.add_typer(job_app, name="job")

# Stages that bring their own subcommands; added when present.
_PLUGGABLE = {
    "ingest": "flinktrade.ingest.cli",
    "notify": "flinktrade.notify.cli",
    "strategies": "flinktrade.strategies.cli",
    "testing": "flinktrade.testing.cli",
}
# Stages that add top-level commands (``register(app)``); added when present.
_REGISTERING = (
    "flinktrade.execution.cli",
    "flinktrade.backtest.cli",
    "flinktrade.api.cli",
)


def _optional(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if not exc.name or not module.startswith(exc.name):
            raise  # the stage exists but one of its own imports is missing
        return None


for _name, _module in _PLUGGABLE.items():
    if (_stage := _optional(_module)) is not None:
        app.add_typer(_stage.app, name=_name)
for _module in _REGISTERING:
    if (_stage := _optional(_module)) is not None:
        _stage.register(app)


def _settings() -> Settings:
    return load_settings()


def _local_broker(settings: Settings) -> Any:
    from flinktrade.infra.kafka import LocalKafka

    return LocalKafka(settings.broker, settings.state_dir)


def uses_local_broker(settings: Settings) -> bool:
    """Whether the settings point at the embedded broker (which the CLI then starts)."""
    local = f"{settings.broker.host}:{settings.broker.port}"
    return settings.kafka.bootstrap_servers.strip() == local


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("py4j", "apache_beam", "pyflink"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if version:
        out.print(__version__)
        raise typer.Exit


@app.command("show-config")
def show_config() -> None:
    """Print the effective configuration (secrets masked) as JSON."""
    out.print_json(json.dumps(masked_dump(load_settings(check_exposure=False))))


def _kafka_cluster(settings: Settings, nodes: int | None = None) -> Any:
    from flinktrade.infra.kafka import LocalKafkaCluster

    return LocalKafkaCluster(settings.broker, settings.state_dir, nodes or settings.broker.nodes)


def _flink_cluster(
    settings: Settings, taskmanagers: int | None = None, slots: int | None = None
) -> Any:
    from flinktrade.infra.flink import FlinkClusterSettings, LocalFlinkCluster

    host, _, port = settings.job.jobmanager.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"job.jobmanager must be host:port, not {settings.job.jobmanager!r}")
    shape = FlinkClusterSettings(
        host=host,
        rest_port=int(port),
        rpc_port=settings.job.cluster_rpc_port,
        taskmanagers=taskmanagers or settings.job.cluster_taskmanagers,
        slots=slots or settings.job.cluster_slots,
    )
    return LocalFlinkCluster(shape, settings.state_dir)


def _cluster_state_exists(settings: Settings) -> bool:
    return (settings.state_dir / "kafka-cluster").is_dir()


@infra_app.command("up")
def infra_up(
    brokers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=9,
            help="KRaft nodes: 1 (default) or a replicated cluster, e.g. 3 (replication factor 3, "
            "min.insync.replicas 2) on ports port, port+2, port+4.",
        ),
    ] = None,
    flink_cluster: Annotated[
        bool, typer.Option(help="Also start a Flink standalone session cluster.")
    ] = False,
    taskmanagers: Annotated[
        int | None, typer.Option(min=1, help="TaskManagers of the session cluster.")
    ] = None,
    slots: Annotated[int | None, typer.Option(min=1, help="Task slots per TaskManager.")] = None,
) -> None:
    """Start the local Kafka (one node, or --brokers N) and create flinktrade's topics; with
    --flink-cluster also a Flink session cluster (web UI at job.jobmanager, 127.0.0.1:8081)."""
    settings = _settings()
    flink_shape = _flink_cluster(settings, taskmanagers, slots) if flink_cluster else None
    if flink_shape is not None:
        flink_shape.require_loopback()  # before anything starts
    nodes = brokers or settings.broker.nodes
    kafka = settings.kafka
    if nodes > 1:
        cluster = _kafka_cluster(settings, nodes)
        cluster.up()
        servers = cluster.bootstrap_servers
        if kafka.replication_factor < cluster.replication_factor:
            kafka = kafka.model_copy(update={"replication_factor": cluster.replication_factor})
        bus.ensure_topics(kafka.model_copy(update={"bootstrap_servers": servers}), _topic_names())
        console.print(
            f"kafka cluster of {nodes} nodes running on {servers} (replication factor "
            f"{kafka.replication_factor}, min.insync.replicas 2)",
            soft_wrap=True,
        )
    else:
        status = _local_broker(settings).up()
        bus.ensure_topics(kafka, _topic_names())
        console.print(f"kafka broker running on {status.bootstrap_servers} (pid {status.pid})")
    if flink_shape is not None:
        flink = flink_shape.up()
        console.print(
            f"flink session cluster running: web UI and REST {flink.rest_url} (jobmanager pid "
            f"{flink.jobmanager_pid}, {len(flink.taskmanager_pids)} taskmanager(s))",
            soft_wrap=True,
        )


def _topic_names() -> list[str]:
    return [t.name for t in topics.ALL]


@infra_app.command("down")
def infra_down() -> None:
    """Stop the local Flink session cluster and Kafka (data and checkpoints stay in the state
    folder)."""
    settings = _settings()
    flink = _flink_cluster(settings)
    if flink.status().jobmanager_pid is not None or any(flink.status().taskmanager_pids.values()):
        flink.down()
        console.print("flink session cluster stopped")
    if _cluster_state_exists(settings):
        _kafka_cluster(settings, _cluster_nodes(settings)).down()
    _local_broker(settings).down()
    console.print("kafka broker stopped")


def _cluster_nodes(settings: Settings) -> int:
    found = list((settings.state_dir / "kafka-cluster").glob("node-*"))
    return max(len(found), 1)


@infra_app.command("status")
def infra_status() -> None:
    """Say whether the broker(s) and the Flink session cluster run, and list the topics of the
    configured cluster."""
    settings = _settings()
    status = _local_broker(settings).status()
    servers = settings.kafka.bootstrap_servers
    local = "running" if status.running else "stopped"
    console.print(f"local broker: {local} (pid {status.pid or '-'}, data {status.state_dir})")
    if _cluster_state_exists(settings):
        for node in _kafka_cluster(settings, _cluster_nodes(settings)).status():
            state = "running" if node.running else "stopped"
            console.print(f"kafka cluster node {node.bootstrap_servers}: {state}")
    flink = _flink_cluster(settings).status()
    if flink.running:
        tms = ", ".join(f"{i}: {pid or 'stopped'}" for i, pid in flink.taskmanager_pids.items())
        console.print(
            f"flink session cluster: running at {flink.rest_url} (jobmanager pid "
            f"{flink.jobmanager_pid}; taskmanagers {tms})",
            soft_wrap=True,
        )
    else:
        console.print(f"flink session cluster: stopped ({flink.rest_url})")
    try:
        names = bus.list_topics(servers)
    except TransientError as exc:
        console.print(f"cluster {servers}: unreachable ({exc})")
        raise typer.Exit(3) from None
    table = Table("topic", "records", title=f"cluster {servers}")
    for name in names:
        table.add_row(name, str(bus.count_records(servers, name)))
    out.print(table)


# Options that `job run` and `job submit` share.
BoundedOption = Annotated[
    bool, typer.Option(help="Stop at the topic's current end (backtests, catch-up).")
]
FromEarliestOption = Annotated[
    bool, typer.Option(help="Ignore committed offsets; read from the beginning.")
]
DeliveryOption = Annotated[
    Delivery | None, typer.Option(help="Output delivery guarantee (default: configured).")
]
LatencyProfileOption = Annotated[
    LatencyProfile | None,
    typer.Option(help="'low': outputs within milliseconds, more CPU (default: configured)."),
]


@job_app.command("run")
def job_run(
    bounded: BoundedOption = False,
    from_earliest: FromEarliestOption = False,
    parallelism: Annotated[int | None, typer.Option(min=1)] = None,
    from_checkpoint: Annotated[
        str | None,
        typer.Option(
            help="Restore from a retained checkpoint or savepoint directory, or 'latest' (the "
            "newest complete checkpoint under the state folder)."
        ),
    ] = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option(
            help="Run this strategy instead of the configured ones: a built-in name, an entry "
            "point, or pkg.module:Class; repeatable. Parameters: --param key=value."
        ),
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="key=value for the --strategy options (all of them).")
    ] = None,
    delivery: DeliveryOption = None,
    latency_profile: LatencyProfileOption = None,
) -> None:
    """Run the Flink job in a local MiniCluster until stopped (or the bounded input ends)."""
    from flinktrade.pipeline.analytics import StrategySpec
    from flinktrade.pipeline.checkpoints import resolve_checkpoint
    from flinktrade.pipeline.job import JobIO, JobOptions, run

    settings = _settings()
    overrides: dict[str, object] = {}
    if parallelism:
        overrides["parallelism"] = parallelism
    if delivery is not None:
        overrides["delivery"] = delivery
    if latency_profile is not None:
        overrides["latency_profile"] = latency_profile
    if from_checkpoint and bounded:
        raise ConfigError(
            "--bounded cannot be combined with --from-checkpoint: the Kafka connector does not "
            "end a bounded read that was restored from a checkpoint"
        )
    if from_checkpoint:
        overrides["restore_from"] = resolve_checkpoint(
            from_checkpoint, settings.state_dir / "checkpoints"
        )
    if strategy:
        params = parse_params(param or [])
        overrides["strategies"] = tuple(StrategySpec(name, params) for name in strategy)
    elif param:
        raise ConfigError("--param needs --strategy")
    bus.ensure_topics(settings.kafka, [t.name for t in topics.ALL])
    io = JobIO.from_settings(settings, bounded=bounded, from_earliest=from_earliest)
    run(io, JobOptions.from_settings(settings, **overrides), wait=True)


def _restore_path(spec: str) -> Any:
    """A savepoint or checkpoint location as the REST API reports it (``file:/...``), a local
    path (checked here), or a URI only the cluster can read (``s3://...``: passed on as it is)."""
    from pathlib import Path

    from flinktrade.pipeline.checkpoints import resolve_checkpoint

    if spec.startswith("file:"):
        spec = "/" + spec.removeprefix("file:").lstrip("/")
    elif "://" in spec:
        return spec
    return resolve_checkpoint(spec, Path(spec))


@job_app.command("submit")
def job_submit(
    jobmanager: Annotated[
        str | None,
        typer.Option(help="REST host:port of the Flink cluster (default: job.jobmanager)."),
    ] = None,
    parallelism: Annotated[int | None, typer.Option(min=1)] = None,
    detached: Annotated[
        bool, typer.Option(help="Return once the cluster accepted the job (print its id).")
    ] = False,
    from_savepoint: Annotated[
        str | None,
        typer.Option(help="Resume from this savepoint (or retained checkpoint) directory."),
    ] = None,
    bounded: BoundedOption = False,
    from_earliest: FromEarliestOption = False,
    delivery: DeliveryOption = None,
    latency_profile: LatencyProfileOption = None,
) -> None:
    """Submit the job to a running Flink cluster (`infra up --flink-cluster`, or a remote one).

    The connector and UDF jars and this package's source are uploaded with the job; checkpoints
    go to the cluster's checkpoint directory. Prints the job id as JSON."""
    from flinktrade.pipeline.job import JobIO, JobOptions, run

    settings = _settings()
    address = jobmanager or settings.job.jobmanager
    overrides: dict[str, object] = {"jobmanager": address, "checkpoint_dir": None}
    if parallelism:
        overrides["parallelism"] = parallelism
    if delivery is not None:
        overrides["delivery"] = delivery
    if latency_profile is not None:
        overrides["latency_profile"] = latency_profile
    if from_savepoint and bounded:
        raise ConfigError("--bounded cannot be combined with --from-savepoint")
    if from_savepoint:
        overrides["restore_from"] = _restore_path(from_savepoint)
    bus.ensure_topics(settings.kafka, _topic_names())
    io = JobIO.from_settings(settings, bounded=bounded, from_earliest=from_earliest)
    result: Any = run(io, JobOptions.from_settings(settings, **overrides), wait=not detached)
    summary = {"job_id": str(result.get_job_id()), "jobmanager": address}
    if not detached:
        summary["state"] = "FINISHED"
    out.print(json.dumps(summary), soft_wrap=True, highlight=False)


def _rest(jobmanager: str | None) -> Any:
    from flinktrade.infra.flink import FlinkRest

    return FlinkRest(jobmanager or _settings().job.jobmanager)


JobmanagerOption = Annotated[
    str | None, typer.Option(help="REST host:port of the Flink cluster (default: job.jobmanager).")
]


@job_app.command("list")
def job_list(jobmanager: JobmanagerOption = None) -> None:
    """List the cluster's jobs (id, name, state, start time)."""
    from datetime import UTC, datetime

    table = Table("job id", "name", "state", "started (UTC)", "tasks")
    for job in _rest(jobmanager).jobs():
        started = datetime.fromtimestamp(job.get("start-time", 0) / 1000, tz=UTC)
        table.add_row(
            job["jid"],
            job["name"],
            job["state"],
            started.strftime("%Y-%m-%d %H:%M:%S"),
            str(job.get("tasks", {}).get("total", "")),
        )
    out.print(table)


@job_app.command("cancel")
def job_cancel(job_id: str, jobmanager: JobmanagerOption = None) -> None:
    """Cancel a job (its retained checkpoints stay restorable)."""
    rest = _rest(jobmanager)
    rest.cancel(job_id)
    state = rest.wait_for_state(job_id, {"CANCELED", "FAILED", "FINISHED"})
    console.print(f"job {job_id}: {state}")


@job_app.command("savepoint")
def job_savepoint(
    job_id: str,
    jobmanager: JobmanagerOption = None,
    target_dir: Annotated[
        str | None, typer.Option(help="Where to write it (default: the cluster's savepoint dir).")
    ] = None,
    stop: Annotated[
        bool, typer.Option(help="Stop the job right after the savepoint (stop-with-savepoint).")
    ] = False,
) -> None:
    """Take a savepoint of a running job; print its location (for `job submit --from-savepoint`)."""
    location = _rest(jobmanager).savepoint(job_id, target_dir, stop=stop)
    out.print(
        json.dumps({"job_id": job_id, "savepoint": location}), soft_wrap=True, highlight=False
    )


def parse_params(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` options as strategy parameters (numbers where they parse as numbers)."""
    params: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {pair!r}: expected key=value")
        value: Any = text
        for kind in (int, float):
            try:
                value = kind(text)
                break
            except ValueError:
                continue
        params[key.strip()] = value
    return params


@app.command("simulate")
def simulate(
    count: Annotated[
        int | None, typer.Option(min=1, help="Produce this many trades as fast as possible.")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(min=0.1, help="Run at the configured pace for N seconds.")
    ] = None,
) -> None:
    """Run the market simulator into market.trades / market.news."""
    from flinktrade.ingest.simulator import MarketSimulator, RawTrade

    settings = _settings()
    if count is None and duration is None:
        raise ConfigError("give --count N (as fast as possible) or --duration SECONDS (paced)")
    bus.ensure_topics(settings.kafka, [t.name for t in topics.ALL])
    sim = settings.simulator
    if count is not None:
        simulator = MarketSimulator(sim.symbols, sim.seed, news=sim.news)
        producer = bus.EventProducer(settings.kafka.bootstrap_servers)
        produced = news = 0
        for item in simulator:
            if isinstance(item, RawTrade):
                producer.send_raw(
                    topics.TRADES.name, item.to_json(item.ts), item.symbol.encode(), item.ts
                )
                produced += 1
                if produced == count:
                    break
            else:
                producer.send(item)
                news += 1
        producer.flush()
        out.print(json.dumps({"trades": produced, "news": news}))
        return
    from flinktrade.demo import SimulatorFeed

    simulator = MarketSimulator(
        sim.symbols, sim.seed, gap_ms=1000.0 * sim.time_scale / sim.trades_per_second, news=sim.news
    )
    feed = SimulatorFeed(settings.kafka.bootstrap_servers, simulator, sim.trades_per_second)
    feed.start()
    try:
        import time

        time.sleep(duration or 0.0)
    except KeyboardInterrupt:
        pass
    feed.stop()
    out.print(json.dumps({"trades": feed.produced_trades, "news": feed.produced_news}))


@app.command("demo")
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
) -> None:
    """Broker + simulator + Flink job + executor + notifier + dashboard, live; ends with JSON.

    The embedded broker is started if it does not run and stopped at the end; one that already
    ran is reused and left running. A service that dies ends the demo with one line and exit 1."""
    from flinktrade.demo import fault_target

    if broker not in ("sim", "alpaca"):
        raise ConfigError(f"--broker must be sim or alpaca, not {broker!r}")
    settings = _settings()
    fault_target()  # a wrong test hook is refused before anything starts
    started = None
    if uses_local_broker(settings):
        local = _local_broker(settings)
        status = local.status()
        if status.running:
            console.print(
                f"reusing the Kafka broker already running on {status.bootstrap_servers} "
                f"(pid {status.pid}); the demo leaves it running",
                soft_wrap=True,
                highlight=False,
            )
        else:
            local.up()
            started = local
    try:
        _demo(settings, duration, broker, api_port, flink_cluster)
    finally:
        if started is not None:
            started.down()
            console.print(
                f"kafka broker on {started.bootstrap_servers} stopped (the demo started it)"
            )


def _demo(
    settings: Settings,
    duration: float | None,
    broker: str,
    api_port: int | None,
    flink_cluster: bool,
) -> None:
    from flinktrade.demo import DemoProgress, run_demo

    jobmanager = None
    if flink_cluster:
        flink = _flink_cluster(settings).up()  # refuses a host off loopback
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
    )
    out.print(json.dumps(summary), soft_wrap=True, highlight=False)


def main() -> None:
    """Console-script entry point: one readable line and an exit code for every known failure."""
    try:
        app(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        sys.exit(_report(exc))


def _report(exc: BaseException) -> int:
    if isinstance(exc, typer.TyperException):  # usage errors: bad option, missing argument
        message = getattr(exc, "format_message", lambda: str(exc))()
        if type(exc).__name__ == "NoArgsIsHelpError":
            console.print(message, highlight=False)
            return 0
        console.print(f"error: {message}", highlight=False, soft_wrap=True)
        return 2
    codes: list[tuple[type[BaseException], int]] = [
        (ConfigError, 2),
        (InfraError, 69),
        (TransientError, 75),
        (FlinktradeError, 1),
    ]
    for kind, code in codes:
        if isinstance(exc, kind):
            console.print(f"error: {exc}", highlight=False, soft_wrap=True)
            return code
    log.exception("unexpected failure")
    return 1


if __name__ == "__main__":
    main()
