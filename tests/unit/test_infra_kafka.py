"""Local Kafka helpers and the launcher's checks that need no broker."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from flinktrade.config import BrokerSettings
from flinktrade.errors import InfraError
from flinktrade.infra import process
from flinktrade.infra.kafka import LocalKafka, new_cluster_id
from flinktrade.testing.ports import free_port


def test_cluster_ids_are_16_bytes_base64url_and_never_look_like_an_option() -> None:
    ids = [new_cluster_id() for _ in range(3000)]  # a bad generator starts 1 in 64 with "-"
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not a Kafka broker (its pid is what a stale pid file may name)."""
    code = "import time; time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while (process.command_line(proc.pid) or [""])[-1] != code:  # under load /proc lags the exec
        assert time.monotonic() < deadline, process.command_line(proc.pid)
        time.sleep(0.01)
    yield proc
    proc.kill()
    proc.wait(timeout=10)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Another program's TCP listener on a free loopback port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def test_up_refuses_a_port_held_by_another_process_although_a_stale_pid_file_names_a_live_pid(
    tmp_path: Path, stranger: subprocess.Popen[bytes], listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    broker = LocalKafka(BrokerSettings(port=port, controller_port=free_port()), tmp_path)
    broker.home.mkdir(parents=True)
    broker.pid_file.write_text(str(stranger.pid))  # the broker died; its pid was reused

    status = broker.status()
    assert not status.running and status.pid is None
    with pytest.raises(InfraError) as refused:
        broker.up()
    message = str(refused.value)
    assert f"port 127.0.0.1:{port} is taken by another process" in message
    assert "\n" not in message

    broker.down()  # must not signal the stranger
    assert stranger.poll() is None


def test_process_helpers(tmp_path: Path, stranger: subprocess.Popen[bytes]) -> None:
    pid_file = tmp_path / "x.pid"
    assert process.read_pid(pid_file) is None  # missing
    pid_file.write_text("not a pid")
    assert process.read_pid(pid_file) is None
    pid_file.write_text(str(stranger.pid))
    assert process.read_pid(pid_file) == stranger.pid
    args = process.command_line(stranger.pid)
    assert args is not None and args[-1] == "import time; time.sleep(120)"
    stranger.kill()
    stranger.wait(timeout=10)
    assert process.read_pid(pid_file) is None  # stale
    assert process.command_line(stranger.pid) is None


def test_a_live_pid_whose_command_line_is_still_empty_counts_as_the_broker(
    tmp_path: Path, stranger: subprocess.Popen[bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the start, /proc/PID/cmdline of the JVM can read empty (seen under load: the
    test brokers were declared dead while starting, and left running)."""
    import flinktrade.infra.kafka as kafka_module

    broker = LocalKafka(BrokerSettings(port=free_port(), controller_port=free_port()), tmp_path)
    broker.home.mkdir(parents=True)
    broker.pid_file.write_text(str(stranger.pid))
    monkeypatch.setattr(kafka_module, "command_line", lambda pid: [])
    assert broker.status().pid == stranger.pid
    monkeypatch.setattr(kafka_module, "command_line", lambda pid: ["python", "-c", "sleep"])
    assert broker.status().pid is None


def test_command_lines_include_a_live_process(stranger: subprocess.Popen[bytes]) -> None:
    assert [sys.executable, "-c", "import time; time.sleep(120)"] in process.command_lines()
