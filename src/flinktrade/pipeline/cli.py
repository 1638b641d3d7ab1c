"""``flinktrade job run|submit|list|cancel|savepoint``: the Flink job, in process or on a cluster.

Registered by the root CLI (``register(app)``). ``run`` and ``submit`` take the same job options,
turned into ``JobOptions`` overrides by one function.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flinktrade import bus, topics
from flinktrade.cli.options import (
    BoundedOption,
    DeliveryOption,
    FromEarliestOption,
    JobmanagerOption,
    LatencyProfileOption,
    ParallelismOption,
    parse_params,
)
from flinktrade.config import Delivery, LatencyProfile, load_settings
from flinktrade.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from flinktrade.infra.flink import FlinkRest

console = Console(stderr=True)
out = Console()

app = typer.Typer(help="The Flink job.", no_args_is_help=True)


def register(root: typer.Typer) -> None:
    """Add ``flinktrade job`` to the main CLI."""
    root.add_typer(app, name="job")


def job_overrides(
    parallelism: int | None,
    delivery: Delivery | None,
    latency_profile: LatencyProfile | None,
    **fixed: object,
) -> dict[str, object]:
    """``JobOptions`` overrides from the options ``run`` and ``submit`` share (unset: configured),
    plus the ``fixed`` ones the command decides."""
    overrides: dict[str, object] = dict(fixed)
    if parallelism:
        overrides["parallelism"] = parallelism
    if delivery is not None:
        overrides["delivery"] = delivery
    if latency_profile is not None:
        overrides["latency_profile"] = latency_profile
    return overrides


def _topic_names() -> list[str]:
    return [t.name for t in topics.ALL]


@app.command("run")
def job_run(
    bounded: BoundedOption = False,
    from_earliest: FromEarliestOption = False,
    parallelism: ParallelismOption = None,
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

    settings = load_settings()
    overrides = job_overrides(parallelism, delivery, latency_profile)
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
    bus.ensure_topics(settings.kafka, _topic_names())
    io = JobIO.from_settings(settings, bounded=bounded, from_earliest=from_earliest)
    run(io, JobOptions.from_settings(settings, **overrides), wait=True)


def _restore_path(spec: str) -> str | Path:
    """A savepoint or checkpoint location as the REST API reports it (``file:/...``), a local
    path (checked here), or a URI only the cluster can read (``s3://...``: passed on as it is)."""
    from pathlib import Path

    from flinktrade.pipeline.checkpoints import resolve_checkpoint

    if spec.startswith("file:"):
        spec = "/" + spec.removeprefix("file:").lstrip("/")
    elif "://" in spec:
        return spec
    return resolve_checkpoint(spec, Path(spec))


@app.command("submit")
def job_submit(
    jobmanager: JobmanagerOption = None,
    parallelism: ParallelismOption = None,
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

    settings = load_settings()
    address = jobmanager or settings.job.jobmanager
    overrides = job_overrides(
        parallelism, delivery, latency_profile, jobmanager=address, checkpoint_dir=None
    )
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


def _rest(jobmanager: str | None) -> FlinkRest:
    from flinktrade.infra.flink import FlinkRest

    return FlinkRest(jobmanager or load_settings().job.jobmanager)


@app.command("list")
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


@app.command("cancel")
def job_cancel(job_id: str, jobmanager: JobmanagerOption = None) -> None:
    """Cancel a job (its retained checkpoints stay restorable)."""
    rest = _rest(jobmanager)
    rest.cancel(job_id)
    state = rest.wait_for_state(job_id, {"CANCELED", "FAILED", "FINISHED"})
    console.print(f"job {job_id}: {state}")


@app.command("savepoint")
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
