"""The job on a Flink session cluster: same results as the MiniCluster; savepoint and resume.

Submission goes through the same code as ``flinktrade job submit`` (in-process for the parallel
run, the CLI itself for the savepoint test).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_helpers import (
    CHECKPOINT_MS,
    STRATEGIES,
    Reference,
    committed_all,
    completed_checkpoints,
    content,
    create_topics,
    input_trades,
    job_env,
    output_names,
    produce,
    wait_until_done,
)

from flinktrade import bus, events, topics
from flinktrade.config import Delivery
from flinktrade.infra.flink import LocalFlinkCluster
from flinktrade.infra.kafka import LocalKafka
from flinktrade.pipeline.job import JobIO, JobOptions, run

pytestmark = pytest.mark.integration


def test_session_cluster_at_parallelism_2_writes_what_the_minicluster_writes_at_1(
    flink: LocalFlinkCluster, cluster_broker: LocalKafka, full_input: str, reference: Reference
) -> None:
    servers = cluster_broker.bootstrap_servers
    names = output_names("p2")
    create_topics(servers, list(names.values()))
    io = JobIO(
        bootstrap_servers=servers,
        trades=full_input,
        news="news.empty",
        bars="bars.empty",
        group_id="session-p2",
        bounded=True,
        from_earliest=True,
        **names,
    )
    options = JobOptions(
        parallelism=2,
        strategies=STRATEGIES,
        checkpoint_interval_ms=CHECKPOINT_MS,
        jobmanager=flink.address,
    )
    run(io, options, wait=True)
    jobs = [j for j in flink.rest.jobs() if j["state"] == "FINISHED"]
    assert jobs, "the job should have run on the session cluster"
    assert content(bus.decode_all(servers, names["signals"], events.Signal)) == content(
        reference.signals
    )
    got_bars = bus.decode_all(servers, names["analytics_bars"], events.AnalyticsBar)
    assert content(got_bars) == content(reference.bars)


def cli(env: dict[str, str], *args: str) -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, "-m", "flinktrade.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, str] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def test_savepoint_cancel_and_resume_lose_and_repeat_nothing(
    flink: LocalFlinkCluster, cluster_broker: LocalKafka, reference: Reference, tmp_path: Path
) -> None:
    """Exactly-once: the first half is processed, a savepoint taken and the job cancelled; the
    second half arrives while no job runs; the job resumes from the savepoint."""
    servers = cluster_broker.bootstrap_servers
    trades = input_trades()
    half = len(trades) // 2
    produce(servers, topics.TRADES.name, trades[:half], flush=False)
    group = "savepoint-test"
    env = job_env(servers, tmp_path / "state", flink, group)
    delivery = ["--delivery", Delivery.EXACTLY_ONCE.value, "--parallelism", "2", "--detached"]

    first = cli(env, "job", "submit", "--from-earliest", *delivery)["job_id"]
    try:
        bus.wait_for(
            lambda: committed_all(servers, group, topics.TRADES.name)
            and completed_checkpoints(flink.rest, first) > 0,
            120,
            what="the first half to be consumed",
        )
        savepoint = cli(env, "job", "savepoint", first)["savepoint"]
    finally:
        subprocess.run(
            [sys.executable, "-m", "flinktrade.cli", "job", "cancel", first],
            env=env,
            check=True,
            timeout=120,
            capture_output=True,
        )
    assert flink.rest.job(first)["state"] == "CANCELED"

    produce(servers, topics.TRADES.name, trades[half:], flush=True)
    second = cli(env, "job", "submit", "--from-savepoint", savepoint, *delivery)["job_id"]
    try:
        wait_until_done(flink.rest, second, servers, group, topics.TRADES.name)
    finally:
        flink.rest.cancel(second)
        flink.rest.wait_for_state(second, {"CANCELED", "FAILED"})

    signals = bus.decode_all(servers, topics.SIGNALS.name, events.Signal, read_committed=True)
    assert content(signals) == content(reference.signals)
    bars = bus.decode_all(
        servers, topics.ANALYTICS_BARS.name, events.AnalyticsBar, read_committed=True
    )
    assert content(bars) == content(reference.bars)
