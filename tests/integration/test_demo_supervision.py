"""`flinktrade demo` end to end: with a broker of its own it stops what it started, whether the
run ends normally or because one of its services died; with a broker already running it reuses it
and leaves it running; a dead service is one line and exit 1.

The normal run is also the end-to-end check of the whole system (simulated trades -> bars ->
signals -> orders and fills at the simulated broker -> Slack notices), so the demo starts once for
both: what it checks of the broker (started, then stopped) and of the data are independent.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flinktrade.infra.kafka import LocalKafka
from flinktrade.testing.fake_slack import FakeSlack
from flinktrade.testing.output import last_json_object
from flinktrade.testing.ports import free_port

pytestmark = pytest.mark.integration


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes whose command line contains ``text``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(proc.name))
    return found


def own_broker_env(state: Path) -> tuple[dict[str, str], int]:
    """The environment of a demo that starts a broker of its own (on free ports) in ``state``."""
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "FLINKTRADE_STATE_DIR": str(state),
            "FLINKTRADE_BROKER__PORT": str(port),
            "FLINKTRADE_BROKER__CONTROLLER_PORT": str(free_port()),
            "FLINKTRADE_BROKER__HEAP": "384m",
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "COLUMNS": "200",
        }
    )
    env.pop("FLINKTRADE_DEMO_FAULT", None)
    return env, port


def run_demo(env: dict[str, str], cwd: Path, duration: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flinktrade.cli", "demo", "--duration", duration, "--api-port", "0"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def run_demo_with_own_broker(
    env: dict[str, str], state: Path, cwd: Path, duration: str
) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    """Run the demo; return its result and the processes of its broker still alive after it."""
    try:
        result = run_demo(env, cwd, duration)
        left = processes_mentioning(str(state / "kafka"))
    finally:  # a failed run must not leave its broker behind for the next tests
        for pid in processes_mentioning(str(state / "kafka")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return result, left


def assert_stopped_its_broker(
    result: subprocess.CompletedProcess[str], left: list[int], state: Path, port: int
) -> None:
    stderr = result.stderr
    assert f"kafka broker on 127.0.0.1:{port} stopped (the demo started it)" in stderr, stderr[
        -3000:
    ]
    assert left == []
    assert not (state / "kafka" / "kafka.pid").exists()
    assert "reusing" not in stderr


def assert_one_line_about_the_dead(result: subprocess.CompletedProcess[str], service: str) -> None:
    stderr = result.stderr
    assert result.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert errors[0].startswith(f"error: demo stopped: the {service} died: "), errors
    assert '"trades"' not in result.stdout  # no summary that looks like a normal run


def test_demo_runs_end_to_end_reports_counts_and_stops_the_broker_it_started(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    env, port = own_broker_env(state)
    with FakeSlack() as slack:
        webhook = slack.webhook_url("#demo")
        env.update(
            {
                "FLINKTRADE_SIMULATOR__SYMBOLS": "4",
                "FLINKTRADE_SIMULATOR__TIME_SCALE": "600",
                "FLINKTRADE_JOB__CHECKPOINT_INTERVAL_MS": "5000",
                "SLACK_WEBHOOK_URL": webhook,
            }
        )
        result, left = run_demo_with_own_broker(env, state, tmp_path, "40")
        messages = slack.messages("#demo")
    assert result.returncode == 0, result.stderr[-3000:]
    # The broker the demo started is gone after a normal end.
    assert_stopped_its_broker(result, left, state, port)
    summary = last_json_object(result.stdout)
    assert summary["trades"] > 10_000
    assert summary["bars"] > 0
    assert summary["signals"] > 0, result.stderr[-3000:]
    assert summary["deadletter"] == 0
    # Signals became orders at the simulated broker, and some filled.
    assert summary["orders"] > 0 and summary["fills"] > 0, result.stderr[-3000:]
    assert "dashboard: http://127.0.0.1:" in result.stderr
    # Notifications reached Slack (one message each, or folded into "N ..." summaries) and
    # the webhook URL, a secret, never reached the output.
    assert all(m.accepted for m in slack.requests)
    posted = sum(_notices_in(m.text) for m in messages)
    notices = sum(summary[k] for k in ("signals", "alerts", "orders", "fills"))
    assert 0 < posted <= notices, [m.text for m in messages]
    path = webhook.split("/services/")[1]
    assert path not in result.stdout + result.stderr


def _notices_in(text: str) -> int:
    summary = re.match(r"(\d+) ", text)
    return int(summary.group(1)) if summary else 1


def test_demo_whose_job_dies_says_so_and_stops_the_broker_it_started(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env, port = own_broker_env(state)
    env.update(
        {
            "FLINKTRADE_SIMULATOR__SYMBOLS": "2",
            "FLINKTRADE_SIMULATOR__TRADES_PER_SECOND": "200",
            "FLINKTRADE_DEMO_FAULT": "job",
        }
    )
    # Long enough that only the fault ends the run.
    result, left = run_demo_with_own_broker(env, state, tmp_path, "3600")
    assert_stopped_its_broker(result, left, state, port)
    assert_one_line_about_the_dead(result, "job")


def test_demo_whose_executor_dies_says_so_and_leaves_a_running_broker_running(
    kafka: LocalKafka, tmp_path: Path
) -> None:
    """The session's broker runs before the demo: the demo says it reuses it, and leaves it
    running when a service dies (as after a normal end)."""
    env = dict(os.environ)
    env.update(
        {
            "FLINKTRADE_STATE_DIR": str(kafka.home.parent),
            "FLINKTRADE_BROKER__PORT": str(kafka.settings.port),
            "FLINKTRADE_BROKER__CONTROLLER_PORT": str(kafka.settings.controller_port),
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "FLINKTRADE_SIMULATOR__SYMBOLS": "2",
            "FLINKTRADE_SIMULATOR__TRADES_PER_SECOND": "200",
            "FLINKTRADE_DEMO_FAULT": "executor",
            "COLUMNS": "200",
        }
    )
    result = run_demo(env, tmp_path, "3600")
    assert f"reusing the Kafka broker already running on {kafka.bootstrap_servers}" in (
        result.stderr
    ), result.stderr[-3000:]
    assert "stopped (the demo started it)" not in result.stderr
    assert kafka.status().running
    assert_one_line_about_the_dead(result, "executor")
