"""The CLI package without processes: stages register their commands, shared helpers behave."""

from __future__ import annotations

import os
import signal

import pytest
from typer.testing import CliRunner

from flinktrade.cli.app import _report, app
from flinktrade.cli.options import parse_params
from flinktrade.cli.signals import stop_on_signals
from flinktrade.config import Delivery, LatencyProfile
from flinktrade.errors import ConfigError, FlinktradeError, InfraError, TransientError
from flinktrade.pipeline.cli import job_overrides

COMMANDS = {
    "show-config", "demo", "simulate", "serve", "backtest", "optimize",
    "execute", "status", "positions", "orders", "halt", "resume", "flatten",
    "infra", "job", "ingest", "notify", "strategies", "testing", "calendar",
}  # fmt: skip
"""Every command of the README's CLI reference."""


def test_every_stage_registers_its_commands() -> None:
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = {
        line.strip("│ ").split()[0]
        for line in result.output.splitlines()
        if line.startswith("│ ") and not line.strip("│ ").startswith("-")
    }
    assert listed >= COMMANDS, COMMANDS - listed


@pytest.mark.parametrize(
    ("group", "subcommands"),
    [
        ("infra", {"up", "down", "status"}),
        ("job", {"run", "submit", "list", "cancel", "savepoint"}),
        ("ingest", {"history", "live", "replay"}),
        ("calendar", {"refresh", "show"}),
    ],
)
def test_groups_keep_their_subcommands(group: str, subcommands: set[str]) -> None:
    result = CliRunner().invoke(app, [group, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    listed = {line.strip("│ ").split()[0] for line in result.output.splitlines() if "│ " in line}
    assert subcommands <= listed


def test_job_overrides_take_only_what_was_given() -> None:
    assert job_overrides(None, None, None) == {}
    assert job_overrides(3, Delivery.EXACTLY_ONCE, LatencyProfile.LOW, checkpoint_dir=None) == {
        "parallelism": 3,
        "delivery": Delivery.EXACTLY_ONCE,
        "latency_profile": LatencyProfile.LOW,
        "checkpoint_dir": None,
    }


def test_parse_params() -> None:
    assert parse_params(["fast=5", "k=2.5", " name = x"]) == {"fast": 5, "k": 2.5, "name": " x"}
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_params(["fast"])


def test_stop_on_signals_sets_the_event_and_puts_the_handlers_back() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for signum in (signal.SIGTERM, signal.SIGINT):
        with stop_on_signals() as stop:
            assert not stop.is_set()
            os.kill(os.getpid(), signum)
            assert stop.wait(10), f"signal {signum} did not set the event"
        assert {s: signal.getsignal(s) for s in before} == before


def test_version_prints_the_package_version() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == version("flinktrade")


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (ConfigError("bad value"), 2),
        (InfraError("port taken"), 69),
        (TransientError("try later"), 75),
        (FlinktradeError("refused"), 1),
    ],
)
def test_known_failures_are_one_line_and_their_exit_code(
    error: Exception, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _report(error) == code
    assert capsys.readouterr().err == f"error: {error}\n"
