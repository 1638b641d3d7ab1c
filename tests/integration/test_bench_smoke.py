"""Keeps the benchmark contenders from rotting: each one runnable in the main venv (flinktrade's
job, trades only and with its news input, the plain confluent-kafka loop, the pass-through) runs on
a tiny input and must pass the same correctness gate as in ``make bench``.

Quix Streams, Bytewax and the seed style need ``.venv-peers`` (their pins conflict with ours), so
``make bench`` exercises them, not this test; it creates no venv.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from bench.run import CONTENDERS, FLINKTRADE_JOB, Bench, Workload

from flinktrade.infra.kafka import LocalKafka

pytestmark = pytest.mark.integration

TRADES = 5_000
SEED = 7
"""A seed whose SMA20/SMA50 never tie exactly at this size (see the reference's float tie note)."""


@pytest.fixture(scope="module")
def harness(kafka: LocalKafka, tmp_path_factory: pytest.TempPathFactory) -> Bench:
    work = Workload.make(TRADES, seed=SEED)
    workdir: Path = tmp_path_factory.mktemp("bench")
    return Bench(kafka, work, workdir, prefix=f"smoke.{uuid.uuid4().hex[:8]}")


@pytest.mark.parametrize("name", ["flinktrade", "flinktrade-news", "plain-loop", "pass-through"])
def test_contender_passes_the_gate(harness: Bench, name: str) -> None:
    contender = next(c for c in CONTENDERS if c.name == name)
    result = harness.catch_up(contender, run=0)
    assert result["correct"], result.get("reason")
    assert result["trades_per_s"]
    if contender.module == FLINKTRADE_JOB:  # from the command: the JVM and the job's build too
        assert result["startup_from_command_s"] > result["startup_s"] > 0
