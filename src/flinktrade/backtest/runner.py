"""Runs the production Flink job over a bounded input on topics of its own, and collects its output.

Each backtest gets fresh topics named ``backtest.<run id>.<role>`` (an input ``bars`` topic plus
empty ``trades`` and ``news`` topics unless it reads the market topics, and the four output topics).
The job reads them from the earliest offset and stops at the end offsets it saw at start
(``JobIO.bounded``), which flushes every window and timer; then the outputs are read back and the
topics are deleted. The job runs in a worker thread so the caller can show progress meanwhile.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from flinktrade import bus, events
from flinktrade.bus import KafkaException
from flinktrade.config import AnalyticsSettings, KafkaSettings
from flinktrade.pipeline.analytics import StrategySpec
from flinktrade.progress import NoProgress, Progress

log = logging.getLogger(__name__)

JOB_TASK = "job"
INPUT_ROLES = ("trades", "news", "bars")
OUTPUT_ROLES = ("analytics_bars", "signals", "alerts", "deadletter")


@dataclass(frozen=True)
class RunTopics:
    """The topics of one backtest run (inputs may be shared market topics, outputs never are)."""

    trades: str
    news: str
    bars: str
    analytics_bars: str
    signals: str
    alerts: str
    deadletter: str

    @classmethod
    def fresh(cls, run_id: str) -> RunTopics:
        roles = (*INPUT_ROLES, *OUTPUT_ROLES)
        return cls(**{role: f"backtest.{run_id}.{role}" for role in roles})

    def names(self) -> dict[str, str]:
        return {role: getattr(self, role) for role in (*INPUT_ROLES, *OUTPUT_ROLES)}


@dataclass(frozen=True)
class JobOutput:
    bars: list[events.AnalyticsBar]
    signals: list[events.Signal]
    alerts: list[events.Alert]
    deadletters: list[events.DeadLetter]
    job_seconds: float


def create_topics(servers: bus.Servers, owned: Sequence[str], partitions: int) -> None:
    bus.ensure_topics(_kafka(servers).model_copy(update={"partitions": partitions}), owned)
    log.info("backtest topics: %s", ", ".join(owned))


def run_job(
    servers: bus.Servers,
    topics: RunTopics,
    strategies: Sequence[StrategySpec],
    analytics: AnalyticsSettings,
    *,
    run_id: str,
    expected_bars: int | None = None,
    parallelism: int = 1,
    progress: Progress | None = None,
    poll_s: float = 0.5,
) -> JobOutput:
    """Run the job bounded from ``topics`` inputs into ``topics`` outputs; wait; read the outputs.

    ``expected_bars`` (if known) drives the progress bar: analytics bars written so far out of it.
    """
    from flinktrade.pipeline.connectors import client_properties
    from flinktrade.pipeline.job import JobIO, JobOptions, run

    progress = progress or NoProgress()
    kafka = _kafka(servers)
    io = JobIO(
        bootstrap_servers=kafka.bootstrap_servers,
        group_id=f"backtest-{run_id}",
        bounded=True,
        from_earliest=True,
        **topics.names(),
    )
    total = max(1, expected_bars or 1)
    progress.begin(JOB_TASK, total)
    failure: list[BaseException] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="flinktrade-backtest-") as work:
        options = JobOptions(
            parallelism=parallelism,
            strategies=tuple(strategies),
            analytics=analytics,
            checkpoint_dir=Path(work) / "checkpoints",
            name=f"flinktrade-backtest-{run_id}",
            kafka_properties=client_properties(kafka),
        )

        def job() -> None:
            try:
                run(io, options, wait=True)
            except BaseException as exc:  # re-raised in the caller's thread below
                failure.append(exc)

        worker = threading.Thread(target=job, name=f"backtest-{run_id}", daemon=True)
        worker.start()
        while worker.is_alive():
            worker.join(poll_s)
            done = bus.count_records(servers, topics.analytics_bars)
            progress.update(JOB_TASK, min(done, total), done)
    if failure:
        raise failure[0]
    seconds = time.monotonic() - started
    bars = bus.decode_all(servers, topics.analytics_bars, events.AnalyticsBar)
    progress.update(JOB_TASK, total, len(bars))
    return JobOutput(
        bars=bars,
        signals=bus.decode_all(servers, topics.signals, events.Signal),
        alerts=bus.decode_all(servers, topics.alerts, events.Alert),
        deadletters=bus.decode_all(servers, topics.deadletter, events.DeadLetter),
        job_seconds=seconds,
    )


def delete(servers: bus.Servers, owned: Sequence[str], timeout_s: float = 30.0) -> None:
    """Delete the run's own topics (never the shared market topics); a failure only warns."""
    try:
        bus.delete_topics(servers, owned, timeout_s)
    except KafkaException as exc:
        log.warning("could not delete backtest topics %s: %s", ", ".join(owned), exc)


def _kafka(servers: bus.Servers) -> KafkaSettings:
    """``servers`` as Kafka settings (a plain ``host:port`` list connects in plaintext)."""
    return (
        servers if isinstance(servers, KafkaSettings) else KafkaSettings(bootstrap_servers=servers)
    )
