"""A local Apache Flink standalone session cluster, started from the ``apache-flink`` wheel's scripts.

``LocalFlinkCluster.up()`` writes ``<state_dir>/flink/conf/config.yaml`` (state backend, checkpoint
and savepoint directories under the state folder, memory sized for a small machine, the web UI and
REST API on ``rest_host:rest_port``), then runs ``bin/jobmanager.sh start-foreground`` and N times
``bin/taskmanager.sh start-foreground`` as daemons of their own (one pid file each, under
``<state_dir>/flink/run``). TaskManagers get this venv and package on ``PYTHONPATH`` so the job's
thread-mode Python operators find ``pemja`` and ``flinktrade`` (same machine only; a remote cluster
needs the dependencies installed on its images, see ``docs/scaling.md``).

The REST API has no authentication, so the cluster refuses a non-loopback host, binds everything
to it, and turns off the web UI's jar upload/run (``web.submit.enable``) and its cancel button
(``web.cancel.enable``). Neither switch touches what flinktrade uses: ``job submit`` posts the job
graph and its jars to ``POST /jobs`` (Flink's REST client), and ``job cancel`` / the demo cancel
with ``PATCH /jobs/<id>``; both stay on. The daemons get an allow-listed environment (no secrets)
and their state is private (folders 0700, files 0600), see ``infra.daemon``.

``FlinkRest`` wraps the few REST calls the CLI needs: list, cancel, savepoint (optionally stopping
the job), and TaskManager and checkpoint details for tests and ``infra status``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flinktrade.config import JitCompiler
from flinktrade.errors import ConfigError, InfraError, TransientError
from flinktrade.infra import daemon, jvm
from flinktrade.infra.embedded import python_path
from flinktrade.infra.process import is_loopback, read_pid, wait_gone

log = logging.getLogger(__name__)

_LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FileAppender
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
appender.file.name = FileAppender
appender.file.type = File
appender.file.append = true
appender.file.fileName = ${sys:log.file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
"""


@dataclass(frozen=True)
class FlinkClusterSettings:
    """Shape of the local session cluster. Memory defaults fit a 2-core, few-GB machine."""

    host: str = "127.0.0.1"
    rest_port: int = 8081
    rpc_port: int = 6123
    taskmanagers: int = 1
    slots: int = 2
    jobmanager_memory: str = "1024m"
    taskmanager_memory: str = "1600m"
    managed_fraction: float = 0.1
    """Managed memory is for RocksDB and process-mode Python; the hashmap backend needs little."""
    heartbeat_timeout_ms: int = 15_000
    """How soon a TaskManager that died without a word is declared lost (Flink's default is 50 s)."""
    jit: JitCompiler = JitCompiler.TIERED
    """The JIT compilers of the JobManager's and the TaskManagers' JVMs (``infra up`` passes
    ``job.jit``, C1 only by default, as for the job's own MiniCluster JVM)."""


@dataclass(frozen=True)
class FlinkStatus:
    jobmanager_pid: int | None
    taskmanager_pids: dict[int, int | None]
    rest_url: str
    reachable: bool
    state_dir: Path

    @property
    def running(self) -> bool:
        return self.jobmanager_pid is not None and self.reachable


def flink_home() -> Path:
    """The Flink distribution inside the ``apache-flink`` wheel (``bin/``, ``lib/``, ``conf/``)."""
    return jvm.flink_lib_dir().parent


class LocalFlinkCluster:
    """Start, stop and inspect the local session cluster. ``up`` is idempotent."""

    def __init__(self, settings: FlinkClusterSettings, state_dir: Path) -> None:
        self.settings = settings
        self.home = (state_dir / "flink").resolve()
        self.rest = FlinkRest(self.rest_url)

    @property
    def rest_url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.rest_port}"

    @property
    def address(self) -> str:
        """``host:port`` of the REST endpoint, as ``job submit --jobmanager`` takes it."""
        return f"{self.settings.host}:{self.settings.rest_port}"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def checkpoint_dir(self) -> Path:
        return self.home / "checkpoints"

    @property
    def savepoint_dir(self) -> Path:
        return self.home / "savepoints"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    def _pid_file(self, role: str) -> Path:
        return self.run_dir / f"{role}.pid"

    def _tm_indexes(self) -> list[int]:
        found = {int(p.stem.split("-")[1]) for p in self.run_dir.glob("taskmanager-*.pid")}
        return sorted(found | set(range(1, self.settings.taskmanagers + 1)))

    def status(self) -> FlinkStatus:
        jm = read_pid(self._pid_file("jobmanager"))
        tms = {i: read_pid(self._pid_file(f"taskmanager-{i}")) for i in self._tm_indexes()}
        tms = {
            i: pid for i, pid in tms.items() if pid is not None or i <= self.settings.taskmanagers
        }
        reachable = jm is not None and self.rest.reachable()
        return FlinkStatus(jm, tms, self.rest_url, reachable, self.home)

    def up(self, timeout_s: float = 120.0) -> FlinkStatus:
        """Start the JobManager and the TaskManagers that do not run; return once the cluster
        reports all TaskManagers registered."""
        self.require_loopback()
        jvm.ensure_jars()
        jm_pid = read_pid(self._pid_file("jobmanager"))
        if jm_pid is None and self.rest.reachable():
            raise InfraError(
                f"{self.rest_url} answers but no JobManager of ours runs: another Flink cluster "
                "(or process) has the port; stop it or pick another --rest-port"
            )
        for folder in (
            self.home,
            self.conf_dir,
            self.run_dir,
            self.home / "log",
            self.home / "tmp",
        ):
            daemon.private_dir(folder)
        self._write_config()
        self._link_lib()
        if jm_pid is None:
            self._start("jobmanager", "jobmanager.sh", [])
        for i in range(1, self.settings.taskmanagers + 1):
            self.start_taskmanager(i)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if read_pid(self._pid_file("jobmanager")) is None:
                break
            with contextlib.suppress(TransientError):
                if len(self.rest.taskmanagers()) >= self.settings.taskmanagers:
                    log.info(
                        "flink session cluster up: %s, %d taskmanager(s) x %d slots",
                        self.rest_url,
                        self.settings.taskmanagers,
                        self.settings.slots,
                    )
                    return self.status()
            time.sleep(0.3)
        tail = _tail(self.home / "log" / "jobmanager.out")
        self.down()
        raise InfraError(f"the Flink session cluster did not start; jobmanager output: {tail}")

    def require_loopback(self) -> None:
        """Refuse a host off loopback: the REST API (which accepts jobs) has no authentication."""
        if not is_loopback(self.settings.host):
            raise ConfigError(
                f"the local Flink cluster must listen on loopback, not {self.settings.host!r}: "
                "its REST API has no authentication (set job.jobmanager to 127.0.0.1:PORT)"
            )

    def start_taskmanager(self, index: int) -> int:
        """Start TaskManager ``index`` (resource id ``taskmanager-<index>``) unless it runs."""
        role = f"taskmanager-{index}"
        pid = read_pid(self._pid_file(role))
        if pid is not None:
            return pid
        return self._start(role, "taskmanager.sh", ["-D", f"taskmanager.resource-id={role}"])

    def kill_taskmanager(self, index: int) -> None:
        """SIGKILL one TaskManager, as a crashed machine would go (for fault tests)."""
        pid = read_pid(self._pid_file(f"taskmanager-{index}"))
        if pid is None:
            raise InfraError(f"taskmanager-{index} is not running")
        os.kill(pid, signal.SIGKILL)
        wait_gone(pid, 10.0)
        self._pid_file(f"taskmanager-{index}").unlink(missing_ok=True)

    def down(self, timeout_s: float = 30.0) -> None:
        """Stop the TaskManagers, then the JobManager (SIGTERM; SIGKILL after ``timeout_s``).
        Running jobs are not cancelled first: their retained checkpoints stay usable."""
        roles = [f"taskmanager-{i}" for i in self._tm_indexes()] + ["jobmanager"]
        pids = {role: read_pid(self._pid_file(role)) for role in roles}
        for pid in pids.values():
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
        for role, pid in pids.items():
            if pid is not None and not wait_gone(pid, timeout_s):
                log.warning("flink %s (pid %s) ignored SIGTERM; killing it", role, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 10.0)
            self._pid_file(role).unlink(missing_ok=True)

    def script_env(self, role: str = "client") -> dict[str, str]:
        """The environment for the distribution's ``bin/`` scripts against this cluster (its
        configuration, lib/ and logs) for a client such as ``bin/flink run``: ours, plus those."""
        return {**os.environ, **self._flink_env(role)}

    def daemon_env(self, role: str) -> dict[str, str]:
        """The environment of a JobManager or TaskManager: the allow-listed part of ours (no
        secrets: see ``infra.daemon``) plus what the scripts and the Python workers need."""
        return daemon.daemon_env(self._flink_env(role))

    def _flink_env(self, role: str) -> dict[str, str]:
        return {
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LIB_DIR": str(self.home / "lib"),
            "FLINK_LOG_DIR": str(self.home / "log"),
            "FLINK_PID_DIR": str(self.run_dir / "scripts"),
            "FLINK_IDENT_STRING": role,
            "PYTHONPATH": python_path(),
            "JAVA_HOME": str(Path(jvm.java_binary()).resolve().parents[1]),
        }

    def _start(self, role: str, script: str, args: list[str]) -> int:
        out = daemon.open_private_log(self.home / "log" / f"{role}.out")
        try:
            proc = subprocess.Popen(
                ["bash", str(flink_home() / "bin" / script), "start-foreground", *args],
                env=self.daemon_env(role),
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                umask=daemon.DAEMON_UMASK,
                start_new_session=True,  # outlives the CLI that started it; `infra down` stops it
            )
        finally:
            os.close(out)
        # The scripts end in `exec java ...`, so this pid is the JVM's.
        daemon.write_private(self._pid_file(role), str(proc.pid))
        log.info("started flink %s (pid %s)", role, proc.pid)
        return proc.pid

    def _link_lib(self) -> None:
        """``lib/`` = the wheel's ``lib/`` plus ``opt/flink-python``: a cluster that runs PyFlink
        jobs needs the Python operators on its own classpath (the job only ships its user jars)."""
        lib = self.home / "lib"
        if lib.exists():
            for old in lib.iterdir():
                old.unlink()
        daemon.private_dir(lib)
        jars = [
            *jvm.flink_lib_dir().glob("*.jar"),
            *(flink_home() / "opt").glob("flink-python-*.jar"),
        ]
        for jar in jars:
            (lib / jar.name).symlink_to(jar)

    def _write_config(self) -> None:
        s = self.settings
        conf: dict[str, Any] = {
            "env.java.opts.all": " ".join([_shipped_java_opts(), *jvm.jit_options(s.jit)]).strip(),
            "jobmanager.rpc.address": s.host,
            "jobmanager.rpc.port": s.rpc_port,
            "jobmanager.bind-host": s.host,
            "jobmanager.memory.process.size": s.jobmanager_memory,
            "jobmanager.execution.failover-strategy": "region",
            "taskmanager.bind-host": s.host,
            "taskmanager.host": s.host,
            "taskmanager.numberOfTaskSlots": s.slots,
            "taskmanager.memory.process.size": s.taskmanager_memory,
            "taskmanager.memory.managed.fraction": s.managed_fraction,
            "taskmanager.load-balance.mode": "SLOTS",  # spread a job over the TaskManagers
            "rest.address": s.host,
            "rest.bind-address": s.host,
            "rest.port": s.rest_port,
            # No authentication on REST: no jar upload/run through the web UI (`job submit` uses
            # POST /jobs, which this does not switch off), no cancel button (PATCH stays).
            "web.submit.enable": False,
            "web.cancel.enable": False,
            "web.rescale.enable": False,
            "parallelism.default": 1,
            "state.backend.type": "hashmap",
            "execution.checkpointing.dir": self.checkpoint_dir.as_uri(),
            "execution.checkpointing.savepoint-dir": self.savepoint_dir.as_uri(),
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "heartbeat.interval": min(10_000, s.heartbeat_timeout_ms // 3),
            "heartbeat.timeout": s.heartbeat_timeout_ms,
            # A TaskManager that starts before the JobManager's ResourceManager fails to resolve
            # it and waits this long before it tries again: Flink's 10 s was 10 of a cluster's
            # 22.5 s start on a loaded machine (docs/benchmarks.md, session 28).
            "cluster.registration.error-delay": REGISTRATION_RETRY,
            "io.tmp.dirs": str(self.home / "tmp"),
            "blob.storage.directory": str(self.home / "tmp"),
            "web.tmpdir": str(self.home / "tmp"),
            "python.executable": _python_executable(),
        }
        # JSON values are valid YAML scalars; Flink 2 reads flat keys in config.yaml.
        text = "".join(f"{key}: {json.dumps(value)}\n" for key, value in conf.items())
        daemon.write_private(self.conf_dir / "config.yaml", text)
        daemon.write_private(self.conf_dir / "log4j-console.properties", _LOG4J)


REGISTRATION_RETRY = "500 ms"
"""``cluster.registration.error-delay`` of the local session cluster (Flink's default: 10 s)."""

_NOT_READY = "Please try to refresh"
"""In the error a starting JobManager answers before its ResourceManager is up ("Cannot connect to
ResourceManager right now. Please try to refresh."): a moment later the same call succeeds."""


class FlinkRest:
    """The Flink REST API calls flinktrade uses (``/jobs``, savepoints, TaskManagers)."""

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        if "://" not in self.url:
            self.url = "http://" + self.url
        try:
            parts = urllib.parse.urlsplit(self.url)
            port = parts.port
        except ValueError:  # e.g. an unclosed "[" or a port that is not a number
            parts, port = urllib.parse.urlsplit(""), None
        if parts.scheme not in ("http", "https") or not parts.hostname or port is None:
            raise ConfigError(f"the Flink REST endpoint must be host:port, not {url!r}")
        self.timeout_s = timeout_s

    def reachable(self) -> bool:
        try:
            self._call("GET", "/config")
        except TransientError:
            return False
        return True

    def overview(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/overview")
        return result

    def jobs(self) -> list[dict[str, Any]]:
        """Jobs the cluster knows: id (``jid``), name, state, start time, ..."""
        jobs: list[dict[str, Any]] = self._call("GET", "/jobs/overview")["jobs"]
        return sorted(jobs, key=lambda j: j.get("start-time", 0))

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/jobs/{job_id}")
        return result

    def taskmanagers(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self._call("GET", "/taskmanagers")["taskmanagers"]
        return items

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/jobs/{job_id}/checkpoints")
        return result

    def cancel(self, job_id: str) -> None:
        self._call("PATCH", f"/jobs/{job_id}?mode=cancel")

    def savepoint(
        self,
        job_id: str,
        target_dir: str | None = None,
        stop: bool = False,
        timeout_s: float = 120.0,
    ) -> str:
        """Take a savepoint and return its location. With ``stop`` the job stops right after it
        (stop-with-savepoint: sources end, sinks commit, nothing is emitted after the savepoint)."""
        body: dict[str, Any] = {"formatType": "CANONICAL"}
        if target_dir is not None:
            body["targetDirectory"] = target_dir
        if stop:
            body["drain"] = False
            trigger = self._call("POST", f"/jobs/{job_id}/stop", body)["request-id"]
        else:
            body["cancel-job"] = False
            trigger = self._call("POST", f"/jobs/{job_id}/savepoints", body)["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            result = self._call("GET", f"/jobs/{job_id}/savepoints/{trigger}")
            if result["status"]["id"] == "COMPLETED":
                operation = result.get("operation", {})
                if "failure-cause" in operation:
                    cause = operation["failure-cause"].get("stack-trace", "")
                    raise InfraError(f"savepoint of {job_id} failed: {cause[:1500]}")
                return str(operation["location"])
            time.sleep(0.3)
        raise TransientError(f"savepoint of {job_id} did not complete within {timeout_s:.0f}s")

    def wait_for_state(self, job_id: str, states: set[str], timeout_s: float = 60.0) -> str:
        """Wait until the job is in one of ``states``; return that state."""
        deadline = time.monotonic() + timeout_s
        state = "?"
        while time.monotonic() < deadline:
            state = str(self.job(job_id)["state"])
            if state in states:
                return state
            time.sleep(0.2)
        raise TransientError(f"job {job_id} still {state} after {timeout_s:.0f}s (wanted {states})")

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - an http(s) URL we were given
            self.url + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data is not None else {},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:1000]
            if exc.code == 503 or _NOT_READY in detail:  # the JobManager is still starting
                raise TransientError(f"Flink REST {method} {path}: {detail}") from None
            raise InfraError(f"Flink REST {method} {path}: HTTP {exc.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise TransientError(f"Flink REST API at {self.url} is not reachable: {exc}") from None
        return json.loads(raw) if raw else {}


def _shipped_java_opts() -> str:
    """``env.java.opts.all`` of the wheel's own config.yaml (the Java 17 ``--add-opens`` flags)."""
    text = (flink_home() / "conf" / "config.yaml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "all:" or line.strip().startswith("all: "):
            value = line.split(":", 1)[1].strip()
            if value:
                return value
            if i + 1 < len(lines):
                return lines[i + 1].strip()
    return ""


def _python_executable() -> str:
    import sys

    return sys.executable


def _tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no output)"
    return " | ".join(text[-lines:])
