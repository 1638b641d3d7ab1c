"""``flinktrade infra up|down|status``: the local Kafka broker(s) and Flink session cluster.

Registered by the root CLI (``register(app)``). ``local_broker`` and ``flink_cluster`` build the
launchers from the settings for other commands that start infrastructure (``demo``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from flinktrade import bus, topics
from flinktrade.config import Settings, load_settings
from flinktrade.errors import ConfigError, TransientError

if TYPE_CHECKING:
    from flinktrade.infra.flink import LocalFlinkCluster
    from flinktrade.infra.kafka import LocalKafka, LocalKafkaCluster

console = Console(stderr=True)
out = Console()

app = typer.Typer(help="The local Kafka broker(s) and Flink session cluster.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add ``flinktrade infra`` to the main CLI."""
    root.add_typer(app, name="infra")


def local_broker(settings: Settings) -> LocalKafka:
    """The embedded single-node broker the settings describe."""
    from flinktrade.infra.kafka import LocalKafka

    return LocalKafka(settings.broker, settings.state_dir)


def kafka_cluster(settings: Settings, nodes: int | None = None) -> LocalKafkaCluster:
    """The local multi-node cluster (``--brokers N``)."""
    from flinktrade.infra.kafka import LocalKafkaCluster

    return LocalKafkaCluster(settings.broker, settings.state_dir, nodes or settings.broker.nodes)


def flink_cluster(
    settings: Settings, taskmanagers: int | None = None, slots: int | None = None
) -> LocalFlinkCluster:
    """The local Flink session cluster at ``job.jobmanager``."""
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
        jit=settings.job.jit,
    )
    return LocalFlinkCluster(shape, settings.state_dir)


def _cluster_state_exists(settings: Settings) -> bool:
    return (settings.state_dir / "kafka-cluster").is_dir()


def _cluster_nodes(settings: Settings) -> int:
    found = list((settings.state_dir / "kafka-cluster").glob("node-*"))
    return max(len(found), 1)


def _topic_names() -> list[str]:
    return [t.name for t in topics.ALL]


@app.command("up")
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
    flink: Annotated[
        bool,
        typer.Option(
            "--flink-cluster/--no-flink-cluster",
            help="Also start a Flink standalone session cluster.",
        ),
    ] = False,
    taskmanagers: Annotated[
        int | None, typer.Option(min=1, help="TaskManagers of the session cluster.")
    ] = None,
    slots: Annotated[int | None, typer.Option(min=1, help="Task slots per TaskManager.")] = None,
) -> None:
    """Start the local Kafka (one node, or --brokers N) and create flinktrade's topics; with
    --flink-cluster also a Flink session cluster (web UI at job.jobmanager, 127.0.0.1:8081)."""
    settings = load_settings()
    flink_shape = flink_cluster(settings, taskmanagers, slots) if flink else None
    if flink_shape is not None:
        flink_shape.require_loopback()  # before anything starts
    nodes = brokers or settings.broker.nodes
    kafka = settings.kafka
    if nodes > 1:
        cluster = kafka_cluster(settings, nodes)
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
        status = local_broker(settings).up()
        bus.ensure_topics(kafka, _topic_names())
        console.print(f"kafka broker running on {status.bootstrap_servers} (pid {status.pid})")
    if flink_shape is not None:
        running = flink_shape.up()
        console.print(
            f"flink session cluster running: web UI and REST {running.rest_url} (jobmanager pid "
            f"{running.jobmanager_pid}, {len(running.taskmanager_pids)} taskmanager(s))",
            soft_wrap=True,
        )


@app.command("down")
def infra_down() -> None:
    """Stop the local Flink session cluster and Kafka (data and checkpoints stay in the state
    folder)."""
    settings = load_settings()
    flink = flink_cluster(settings)
    if flink.status().jobmanager_pid is not None or any(flink.status().taskmanager_pids.values()):
        flink.down()
        console.print("flink session cluster stopped")
    if _cluster_state_exists(settings):
        kafka_cluster(settings, _cluster_nodes(settings)).down()
    local_broker(settings).down()
    console.print("kafka broker stopped")


@app.command("status")
def infra_status() -> None:
    """Say whether the broker(s) and the Flink session cluster run, and list the topics of the
    configured cluster."""
    settings = load_settings()
    status = local_broker(settings).status()
    servers = settings.kafka.bootstrap_servers
    local = "running" if status.running else "stopped"
    console.print(f"local broker: {local} (pid {status.pid or '-'}, data {status.state_dir})")
    if _cluster_state_exists(settings):
        for node in kafka_cluster(settings, _cluster_nodes(settings)).status():
            state = "running" if node.running else "stopped"
            console.print(f"kafka cluster node {node.bootstrap_servers}: {state}")
    flink = flink_cluster(settings).status()
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
        names = bus.list_topics(settings.kafka)
    except TransientError as exc:
        console.print(f"cluster {servers}: unreachable ({exc})")
        raise typer.Exit(3) from None
    table = Table("topic", "records", title=f"cluster {servers}")
    for name in names:
        table.add_row(name, str(bus.count_records(settings.kafka, name)))
    out.print(table)
