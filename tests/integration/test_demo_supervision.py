"""`flinktrade demo` with a broker of its own: it stops what it started, whether the run ends
normally or because one of its services died, and a dead service is one line and exit 1."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

from flinktrade.infra import jvm
from flinktrade.infra.process import command_lines
from flinktrade.testing.command import run_flinktrade
from flinktrade.testing.output import last_json_object
from flinktrade.testing.ports import free_port

pytestmark = pytest.mark.integration


def _broker_command_line(folder: Path, seen: list[list[str]], timeout_s: float = 300) -> None:
    """Append the arguments of the first live Kafka broker naming ``folder`` to ``seen``."""
    deadline = time.monotonic() + timeout_s
    while not seen and time.monotonic() < deadline:
        for args in command_lines():
            if "kafka.Kafka" in args and any(str(folder) in arg for arg in args):
                seen.append(args)
                return
        time.sleep(0.05)


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


@pytest.mark.parametrize(
    ("fault", "service"),
    [(None, None), ("executor", "executor"), ("job", "job")],
    ids=["normal-end", "executor-dies", "job-dies"],
)
def test_demo_stops_the_broker_it_started_and_reports_a_dead_service(
    tmp_path: Path, fault: str | None, service: str | None
) -> None:
    state = tmp_path / "state"
    port = free_port()
    env = dict(os.environ)
    env.update(
        {
            "FLINKTRADE_STATE_DIR": str(state),
            "FLINKTRADE_BROKER__PORT": str(port),
            "FLINKTRADE_BROKER__CONTROLLER_PORT": str(free_port()),
            "FLINKTRADE_BROKER__HEAP": "384m",
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "FLINKTRADE_SIMULATOR__SYMBOLS": "2",
            "FLINKTRADE_SIMULATOR__TRADES_PER_SECOND": "200",
            "COLUMNS": "200",
        }
    )
    env.pop("FLINKTRADE_DEMO_FAULT", None)
    env.pop("FLINKTRADE_BROKER__JIT", None)
    if fault is not None:
        env["FLINKTRADE_DEMO_FAULT"] = fault
    # Long enough that only the fault ends the faulty runs; the normal one ends by itself.
    duration = "8" if fault is None else "3600"
    seen: list[list[str]] = []  # the command line of the broker the demo started, once it runs
    watch = threading.Thread(target=_broker_command_line, args=(state / "kafka", seen), daemon=True)
    try:
        watch.start()
        command = ["demo", "--duration", duration, "--api-port", "0"]
        result = run_flinktrade(*command, env=env, cwd=tmp_path, timeout=600)
        left = processes_mentioning(str(state / "kafka"))
    finally:  # a failed run must not leave its broker behind for the next tests
        for pid in processes_mentioning(str(state / "kafka")):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    stderr = result.stderr
    # The broker the demo started is gone, whatever ended the demo.
    assert f"kafka broker on 127.0.0.1:{port} stopped (the demo started it)" in stderr, stderr[
        -3000:
    ]
    assert left == []
    assert not (state / "kafka" / "kafka.pid").exists()
    assert "reusing" not in stderr
    # the demo's broker compiles with C1 only unless ``broker.jit`` is set (demo_settings)
    watch.join(5)
    assert seen and jvm.C1_ONLY in seen[0], seen
    if service is None:
        assert result.returncode == 0, stderr[-3000:]
        assert last_json_object(result.stdout)["trades"] > 0
        return
    assert result.returncode == 1, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert errors[0].startswith(f"error: demo stopped: the {service} died: "), errors
    assert '"trades"' not in result.stdout  # no summary that looks like a normal run


def test_a_demo_whose_broker_port_is_taken_is_one_line_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    """The broker is launched on a thread beside the job's build: its refusal still ends the demo
    with one line, and no JVM of the demo (broker or job) is left behind."""
    state = tmp_path / "state"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = dict(os.environ)
        env.update(
            {
                "FLINKTRADE_STATE_DIR": str(state),
                "FLINKTRADE_BROKER__PORT": str(port),
                "FLINKTRADE_BROKER__CONTROLLER_PORT": str(free_port()),
                "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
                "COLUMNS": "200",
            }
        )
        env.pop("FLINKTRADE_DEMO_FAULT", None)
        result = run_flinktrade("demo", "--duration", "5", env=env, cwd=tmp_path, timeout=300)
    stderr = result.stderr
    assert result.returncode != 0, stderr[-3000:]
    assert "Traceback" not in stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, stderr[-3000:]
    assert f"port 127.0.0.1:{port} is taken by another process" in errors[0]
    assert "stopped (the demo started it)" not in stderr  # it started nothing
    assert processes_mentioning(str(state)) == []
    assert processes_mentioning(str(tmp_path)) == []
