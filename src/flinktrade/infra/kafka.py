"""The embedded Apache Kafka broker: one KRaft node (broker + controller) from Maven-resolved jars.

State lives under ``<state_dir>/kafka``: ``server.properties``, ``log4j2.xml``, the data folder,
``kafka.log`` and ``kafka.pid``. Settings are those a single node needs for transactions to work
(replication factor 1 for offsets and transaction state, a transaction timeout ceiling above the
Flink sink's).
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from flinktrade.config import BrokerSettings
from flinktrade.errors import InfraError
from flinktrade.infra import jvm

log = logging.getLogger(__name__)

TRANSACTION_MAX_TIMEOUT_MS = 3_600_000
"""The broker's ceiling for transaction.timeout.ms: the Flink Kafka sink's default is 1 h."""

_LOG4J2 = """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders>
    <File name="file" fileName="{log}" append="true">
      <PatternLayout pattern="[%d{{ISO8601}}] %p %m (%c)%n"/>
    </File>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="file"/></Root>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.storage" level="WARN"/>
    <Logger name="kafka.log" level="WARN"/>
  </Loggers>
</Configuration>
"""


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap_servers: str
    state_dir: Path


class LocalKafka:
    """Start, stop and inspect the local broker. Safe to call ``up`` when it already runs."""

    def __init__(self, settings: BrokerSettings, state_dir: Path) -> None:
        self.settings = settings
        self.home = (state_dir / "kafka").resolve()

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "kafka.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "kafka.log"

    def status(self) -> BrokerStatus:
        pid = self._pid()
        running = pid is not None and _port_open(self.settings.host, self.settings.port)
        return BrokerStatus(running, pid, self.bootstrap_servers, self.home)

    def up(self, timeout_s: float = 90.0) -> BrokerStatus:
        """Start the broker unless it runs; return once it accepts connections."""
        current = self.status()
        if current.running:
            return current
        if self._pid() is None and _port_open(self.settings.host, self.settings.port):
            raise InfraError(
                f"port {self.bootstrap_servers} is taken by another process: stop it, or set "
                "FLINKTRADE_BROKER__PORT (and FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS) to a free port"
            )
        jvm.ensure_jars()
        self.home.mkdir(parents=True, exist_ok=True)
        props = self._write_config()
        if not (self.home / "data" / "meta.properties").is_file():
            self._format(props)
        self._start(props)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if _port_open(self.settings.host, self.settings.port):
                log.info("kafka broker up on %s (pid %s)", self.bootstrap_servers, self._pid())
                return self.status()
            if self._pid() is None:
                break
            time.sleep(0.2)
        tail = self._log_tail()
        self.down()
        raise InfraError(f"the Kafka broker did not start; last log lines: {tail}")

    def down(self, timeout_s: float = 30.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout_s``)."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.1)
        if _alive(pid):
            log.warning("kafka broker (pid %s) ignored SIGTERM; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _write_config(self) -> Path:
        s = self.settings
        data = self.home / "data"
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{s.host}:{s.controller_port}",
            "listeners": f"PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{s.host}:{s.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "transaction.max.timeout.ms": str(TRANSACTION_MAX_TIMEOUT_MS),
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.check.interval.ms": "300000",
            # Replays and the demo run event time ahead of the wall clock; accept their timestamps.
            "log.message.timestamp.after.max.ms": str(2**63 - 1),
        }
        path = self.home / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.home / "log4j2.xml").write_text(_LOG4J2.format(log=self.log_file))
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            jvm.java_binary(),
            f"-Xmx{self.settings.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.home / 'log4j2.xml'}",
            "-cp",
            jvm.kafka_classpath(),
            main,
            *args,
        ]

    def _format(self, props: Path) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        cmd = self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(props))
        result = subprocess.run([*cmd, "--standalone"], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InfraError("formatting Kafka storage failed: " + result.stderr.strip()[-500:])

    def _start(self, props: Path) -> None:
        out = self.log_file.open("ab")
        proc = subprocess.Popen(
            self._java("kafka.Kafka", str(props)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # survives the CLI that started it; `infra down` stops it
        )
        out.close()
        self.pid_file.write_text(str(proc.pid))

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process counts as gone.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def _port_open(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0
