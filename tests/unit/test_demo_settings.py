"""What the demo changes in the settings it runs with, and what the CLI imports to start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flinktrade.config import Settings
from flinktrade.demo import DEMO_SIDE_IDLE_MS, demo_settings


def test_the_demo_lets_its_inputs_go_as_idle_sooner_and_keeps_lower_settings() -> None:
    production = Settings()
    demo = demo_settings(production).job
    assert production.job.idle_timeout_ms == 30_000
    assert production.job.side_idle_timeout_ms == 2_000
    assert demo.idle_timeout_ms == 5_000
    assert demo.side_idle_timeout_ms == DEMO_SIDE_IDLE_MS < 2_000
    lower = production.model_copy(
        update={
            "job": production.job.model_copy(
                update={"idle_timeout_ms": 1_000, "side_idle_timeout_ms": 100}
            )
        }
    )
    assert demo_settings(lower).job.idle_timeout_ms == 1_000
    assert demo_settings(lower).job.side_idle_timeout_ms == 100


def test_the_demo_reads_no_provider_bars_unless_they_are_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its simulator writes none; ``FLINKTRADE_JOB__PROVIDER_BARS`` (or a settings file) set
    explicitly wins either way."""
    monkeypatch.delenv("FLINKTRADE_JOB__PROVIDER_BARS", raising=False)
    assert Settings().job.provider_bars is True
    assert demo_settings(Settings()).job.provider_bars is False
    for value, wanted in (("true", True), ("false", False)):
        monkeypatch.setenv("FLINKTRADE_JOB__PROVIDER_BARS", value)
        assert demo_settings(Settings()).job.provider_bars is wanted


def test_the_cli_imports_alpaca_only_for_the_commands_that_use_it() -> None:
    """Every ``flinktrade`` command, the demo first, used to pay ~0.3 s importing alpaca-py (and
    pandas with it) when the ``ingest`` commands were registered."""
    code = "import sys, flinktrade.cli.app; print(sorted(m for m in ('alpaca', 'flinktrade.ingest.alpaca') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_the_demos_broker_compiles_with_c1_only_unless_broker_jit_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """C1 made the demo's broker accept connections 1.5-5 s sooner on this machine; the setting
    itself keeps the JVM's default (``tiered``), which ``FLINKTRADE_BROKER__JIT`` can restore."""
    from flinktrade.config import JitCompiler

    monkeypatch.delenv("FLINKTRADE_BROKER__JIT", raising=False)
    assert Settings().broker.jit is JitCompiler.TIERED
    assert demo_settings(Settings()).broker.jit is JitCompiler.C1
    assert demo_settings(demo_settings(Settings())).broker.jit is JitCompiler.C1
    monkeypatch.setenv("FLINKTRADE_BROKER__JIT", "tiered")
    assert demo_settings(Settings()).broker.jit is JitCompiler.TIERED
