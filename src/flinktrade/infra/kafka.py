"""The embedded Apache Kafka broker: KRaft nodes (broker + controller) from Maven-resolved jars.

``LocalKafka`` is one node. State lives under ``<state_dir>/kafka``: ``server.properties``,
``log4j2.xml``, the data folder, ``kafka.log`` and ``kafka.pid``, all private to the user (folders
0700, files 0600). Settings are those a single node needs for transactions to work (replication
factor 1 for offsets and transaction state, a transaction timeout ceiling above the Flink sink's).
The JVM gets an allow-listed environment, never the caller's secrets (see ``infra.daemon``), and
listens on ``BrokerSettings.host`` (loopback by default: PLAINTEXT, no authentication). A
``SaslListener`` adds a second client listener that requires SASL/PLAIN logins (users and
passwords in the private ``server.properties``): what the tests of flinktrade's Kafka security
settings run against; inter-broker and controller traffic stay on the PLAINTEXT listeners.

``LocalKafkaCluster`` is N such nodes on loopback ports (state under ``<state_dir>/kafka-cluster``),
each a broker and a voter of a static controller quorum, with replication factor N (at most 3) for
internal topics and new topics by default and ``min.insync.replicas`` 2: with ``acks=all`` an
acknowledged record is on two nodes, and one node can die without stopping producers.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from flinktrade.config import BrokerSettings, JitCompiler
from flinktrade.errors import InfraError
from flinktrade.infra import cds, daemon, jvm
from flinktrade.infra.process import alive, command_line, port_open

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


PLAIN_LOGIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass(frozen=True)
class SaslListener:
    """A client listener on ``port`` (same host) that takes SASL/PLAIN logins of ``users``
    (name -> password; letters, digits and ``-_.`` only, so they need no quoting)."""

    port: int
    users: Mapping[str, str] = field(repr=False)

    def __post_init__(self) -> None:
        for name, password in self.users.items():
            if not (_plain_word(name) and _plain_word(password)):
                raise InfraError("SASL user names and passwords: letters, digits and -_. only")

    def jaas_config(self) -> str:
        users = " ".join(f'user_{name}="{password}"' for name, password in self.users.items())
        return f"{PLAIN_LOGIN_MODULE} required {users};"


def _plain_word(text: str) -> bool:
    return bool(text) and all(c.isascii() and (c.isalnum() or c in "-_.") for c in text)


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap_servers: str
    state_dir: Path


class LocalKafka:
    """Start, stop and inspect the local broker. Safe to call ``up`` when it already runs."""

    def __init__(
        self,
        settings: BrokerSettings,
        state_dir: Path,
        *,
        node_id: int = 1,
        home: Path | None = None,
        voters: str | None = None,
        cluster_id: str | None = None,
        replication: int = 1,
        sasl: SaslListener | None = None,
    ) -> None:
        self.settings = settings
        self.home = (home or state_dir / "kafka").resolve()
        self.node_id = node_id
        self.voters = voters
        """``controller.quorum.voters`` of a multi-node cluster (None: a standalone node)."""
        self.cluster_id = cluster_id
        self.replication = replication
        self.sasl = sasl
        self.archive_flags: list[str] | None = None
        """The broker JVM's class-data sharing flags (None: ``cds.flags``, the archive made at
        set-up when it matches; ``cds.build`` sets the flags that make it)."""

    @property
    def sasl_bootstrap_servers(self) -> str | None:
        """``host:port`` of the SASL listener, if there is one."""
        return None if self.sasl is None else f"{self.settings.host}:{self.sasl.port}"

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
        running = pid is not None and port_open(self.settings.host, self.settings.port)
        return BrokerStatus(running, pid, self.bootstrap_servers, self.home)

    def up(self, timeout_s: float = 90.0) -> BrokerStatus:
        """Start the broker unless it runs; return once it accepts connections."""
        current = self.status()
        if current.running:
            return current
        self.launch()
        return self.wait_up(timeout_s)

    def launch(self) -> None:
        """Start the broker without waiting for it (``wait_up`` does); ``InfraError`` if another
        process holds its port."""
        if self._pid() is None and port_open(self.settings.host, self.settings.port):
            raise InfraError(
                f"port {self.bootstrap_servers} is taken by another process, not this broker "
                f"(no live broker of {self.home} owns it): stop it, or set "
                "FLINKTRADE_BROKER__PORT (and FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS) to a free port"
            )
        self.prepare()
        self.start()

    def wait_up(self, timeout_s: float = 90.0) -> BrokerStatus:
        """Wait for the node ``start`` started to accept connections; ``InfraError`` (and the
        node stopped) if it dies or is not up within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if port_open(self.settings.host, self.settings.port):
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
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        if alive(pid):
            log.warning("kafka broker (pid %s) ignored SIGTERM; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)

    def prepare(self) -> None:
        """Write the configuration and format the storage if it is new (not started)."""
        jvm.ensure_jars()
        daemon.private_dir(self.home)
        props = self._write_config()
        if not (self.home / "data" / "meta.properties").is_file():
            self._format(props)

    def start(self) -> None:
        """Start the node's process without waiting for it (``prepare`` first)."""
        self._start(self.home / "server.properties")

    def kill(self) -> None:
        """SIGKILL the node, as a crashed machine would go (for fault tests)."""
        pid = self._pid()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.pid_file.unlink(missing_ok=True)

    def _pid(self) -> int | None:
        """The broker's pid if the pid file names a live process that is this node's broker.

        A pid number is reused once its process is gone, so a live pid alone proves nothing: it
        counts only if its command line runs ``kafka.Kafka`` on this node's ``server.properties``
        (where the command line cannot be read or is still empty, a live pid is taken at its
        word)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not alive(pid):
            return None
        args = command_line(pid)
        # An empty command line is a process caught mid-exec (seen under load right after the
        # start): like an unreadable one, it is taken at its word.
        if args and not _runs_broker(args, self.home / "server.properties"):
            log.warning(
                "kafka pid file %s names pid %s, which is not this broker", self.pid_file, pid
            )
            return None
        return pid

    def _write_config(self) -> Path:
        s = self.settings
        data = self.home / "data"
        rf = str(self.replication)
        min_isr = str(min(2, self.replication))
        quorum = (
            {"controller.quorum.voters": self.voters}
            if self.voters
            else {"controller.quorum.bootstrap.servers": f"{s.host}:{s.controller_port}"}
        )
        listeners = f"PLAINTEXT://{s.host}:{s.port},CONTROLLER://{s.host}:{s.controller_port}"
        advertised = f"PLAINTEXT://{s.host}:{s.port}"
        protocols = "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
        sasl: dict[str, str] = {}
        if self.sasl is not None:
            listeners += f",SASL_PLAINTEXT://{s.host}:{self.sasl.port}"
            advertised += f",SASL_PLAINTEXT://{s.host}:{self.sasl.port}"
            protocols += ",SASL_PLAINTEXT:SASL_PLAINTEXT"
            sasl = {
                "sasl.enabled.mechanisms": "PLAIN",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config": self.sasl.jaas_config(),
            }
        props = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            **quorum,
            "listeners": listeners,
            "advertised.listeners": advertised,
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": protocols,
            "inter.broker.listener.name": "PLAINTEXT",
            **sasl,
            "log.dirs": str(data),
            "num.partitions": "1",
            "auto.create.topics.enable": "false",
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "transaction.max.timeout.ms": str(TRANSACTION_MAX_TIMEOUT_MS),
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.check.interval.ms": "300000",
            # Replays and the demo run event time ahead of the wall clock; accept their timestamps.
            "log.message.timestamp.after.max.ms": str(2**63 - 1),
        }
        path = self.home / "server.properties"
        daemon.write_private(path, "".join(f"{k}={v}\n" for k, v in props.items()))
        daemon.write_private(self.home / "log4j2.xml", _LOG4J2.format(log=self.log_file))
        return path

    def _java(self, main: str, *args: str, jit: JitCompiler = JitCompiler.TIERED) -> list[str]:
        return [
            jvm.java_binary(),
            f"-Xmx{self.settings.heap}",
            "-Xms256m",
            *jvm.jit_options(jit),
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
        cluster_id = self.cluster_id or new_cluster_id()
        cmd = self._java(  # a one-shot tool: C2 would only cost CPU (~1/3 of its ~2.7 CPU-s)
            "kafka.tools.StorageTool",
            "format",
            f"--cluster-id={cluster_id}",
            "-c",
            str(props),
            jit=JitCompiler.C1,
        )
        if not self.voters:
            cmd.append("--standalone")
        result = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            check=False,
            env=daemon.daemon_env(),
            umask=daemon.DAEMON_UMASK,
        )
        if result.returncode != 0:
            raise InfraError("formatting Kafka storage failed: " + result.stderr.strip()[-500:])

    def _start(self, props: Path) -> None:
        command = self._java("kafka.Kafka", str(props), jit=self.settings.jit)
        archive = cds.flags(cds.BROKER) if self.archive_flags is None else self.archive_flags
        command[1:1] = archive
        out = daemon.open_private_log(self.log_file)
        try:
            proc = subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=daemon.daemon_env(),
                umask=daemon.DAEMON_UMASK,
                start_new_session=True,  # survives the CLI that started it; `infra down` stops it
            )
        finally:
            os.close(out)
        daemon.write_private(self.pid_file, str(proc.pid))

    def _log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(text[-lines:])


class LocalKafkaCluster:
    """N KRaft nodes on loopback ports, each broker + controller (a static quorum of N voters).

    Node ``i`` (1-based) listens on ``port + 2(i-1)`` and ``controller_port + 2(i-1)`` unless
    ``ports`` gives (broker, controller) pairs: with the defaults 9092/9093 that is 9092, 9094, 9096
    for clients, so the default bootstrap address reaches node 1.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        state_dir: Path,
        nodes: int = 3,
        ports: list[tuple[int, int]] | None = None,
    ) -> None:
        if nodes < 1:
            raise InfraError("a Kafka cluster needs at least one node")
        self.settings = settings
        self.home = (state_dir / "kafka-cluster").resolve()
        if ports is None:
            ports = [
                (settings.port + 2 * i, settings.controller_port + 2 * i) for i in range(nodes)
            ]
        if len(ports) != nodes:
            raise InfraError(f"{nodes} nodes need {nodes} port pairs, got {len(ports)}")
        voters = ",".join(f"{i}@{settings.host}:{c}" for i, (_, c) in enumerate(ports, 1))
        self.nodes = [
            LocalKafka(
                settings.model_copy(update={"port": p, "controller_port": c}),
                state_dir,
                node_id=i,
                home=self.home / f"node-{i}",
                voters=voters,
                cluster_id=self._cluster_id(),
                replication=min(3, nodes),
            )
            for i, (p, c) in enumerate(ports, 1)
        ]

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(node.bootstrap_servers for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        return min(3, len(self.nodes))

    def node(self, node_id: int) -> LocalKafka:
        return self.nodes[node_id - 1]

    def status(self) -> list[BrokerStatus]:
        return [node.status() for node in self.nodes]

    def up(self, timeout_s: float = 120.0) -> list[BrokerStatus]:
        """Start the nodes that do not run; return once all accept connections and the cluster
        lists every broker. The quorum needs a majority, so nodes start together."""
        for node in self.nodes:
            if node.status().running:
                continue
            if node._pid() is None and port_open(node.settings.host, node.settings.port):
                raise InfraError(f"port {node.bootstrap_servers} is taken by another process")
            node.prepare()
            node.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(n.status().running for n in self.nodes) and self._registered() == len(
                self.nodes
            ):
                log.info("kafka cluster up: %s", self.bootstrap_servers)
                return self.status()
            dead = [n for n in self.nodes if n._pid() is None]
            if dead:
                tail = dead[0]._log_tail()
                self.down()
                raise InfraError(f"kafka node {dead[0].node_id} exited; last log lines: {tail}")
            time.sleep(0.3)
        tail = " / ".join(n._log_tail(2) for n in self.nodes)
        self.down()
        raise InfraError(f"the Kafka cluster did not start in {timeout_s:.0f}s: {tail}")

    def down(self, timeout_s: float = 20.0) -> None:
        """Stop all nodes together (SIGTERM, then SIGKILL after ``timeout_s``): stopped one by
        one, the last nodes would wait for a quorum that is already gone."""
        pids = {node: node._pid() for node in self.nodes}
        for pid in pids.values():
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(p and alive(p) for p in pids.values()):
            time.sleep(0.1)
        for node, pid in pids.items():
            if pid is not None and alive(pid):
                log.warning("kafka node %s (pid %s) ignored SIGTERM; killing it", node.node_id, pid)
                node.kill()
            node.pid_file.unlink(missing_ok=True)

    def _registered(self) -> int:
        from flinktrade import bus

        client = bus.admin(self.bootstrap_servers)
        try:
            return len(client.list_topics(timeout=2).brokers)
        except bus.KafkaException:  # not up yet
            return 0

    def _cluster_id(self) -> str:
        """One id for all nodes, kept beside them so a restart reuses the formatted storage."""
        path = self.home / "cluster.id"
        if path.is_file():
            return path.read_text().strip()
        daemon.private_dir(self.home)
        cluster_id = new_cluster_id()
        daemon.write_private(path, cluster_id)
        return cluster_id


def new_cluster_id() -> str:
    """A random id as Kafka makes them (``Uuid.randomUuid``): base64url of 16 bytes, never starting
    with "-" (a command line would read it as an option: 1 in 64 ids did, and formatting failed)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _runs_broker(args: list[str], props: Path) -> bool:
    """Whether a command line is a Kafka node started on the properties file ``props``."""
    return "kafka.Kafka" in args and str(props) in args
