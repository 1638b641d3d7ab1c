"""What the daemons inherit, the modes of their state, and the loopback guard (no processes)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from flinktrade.config import is_loopback, load_settings, non_loopback_hosts
from flinktrade.errors import ConfigError, InfraError
from flinktrade.infra import daemon
from flinktrade.infra.flink import FlinkClusterSettings, FlinkRest, LocalFlinkCluster

SECRETS = {
    "APCA_API_KEY_ID": "key-id-4711",
    "APCA_API_SECRET_KEY": "alpaca-secret-4711",
    "SLACK_WEBHOOK_URL": "http://127.0.0.1:1/services/T0/B0/hook-secret-4711",
    "SLACK_BOT_TOKEN": "xoxb-secret-4711",
    "FLINKTRADE_API_TOKEN": "api-token-4711",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-4711",
    "MY_DB_PASSWORD": "db-password-4711",
}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_daemon_env_keeps_only_the_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
    monkeypatch.setenv("JAVA_HOME", "/opt/jdk")
    env = daemon.daemon_env({"FLINK_CONF_DIR": "/x/conf", "PATH": "/only/this"})
    assert not set(SECRETS) & set(env)
    assert not [v for v in env.values() if "4711" in v]
    assert env["LC_ALL"] == "C.UTF-8"
    assert env["JAVA_HOME"] == "/opt/jdk"
    assert env["FLINK_CONF_DIR"] == "/x/conf"
    assert env["PATH"] == "/only/this"  # what the caller adds wins


def test_private_dir_makes_missing_parents_and_the_leaf_0700(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    leaf = daemon.private_dir(shared / "state" / "kafka")
    assert mode(shared) == 0o755  # an existing parent keeps its mode
    assert mode(shared / "state") == 0o700
    assert mode(leaf) == 0o700
    leaf.chmod(0o755)
    daemon.private_dir(leaf)  # an existing leaf is tightened
    assert mode(leaf) == 0o700


def test_private_dir_that_cannot_be_made_is_one_infra_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InfraError, match=f"cannot create the state folder {blocker}/kafka"):
        daemon.private_dir(blocker / "kafka")


def test_write_private_is_0600_also_over_a_wider_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("old")
    path.chmod(0o644)
    daemon.write_private(path, "new")
    assert path.read_text() == "new"
    assert mode(path) == 0o600
    log = tmp_path / "x.log"
    fd = daemon.open_private_log(log)
    daemon.os.close(fd)
    assert mode(log) == 0o600


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("10.0.0.5", False),
        ("kafka.internal", False),
        ("::", False),
        ("", False),
    ],
)
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_hosts_of_a_bootstrap_list() -> None:
    assert non_loopback_hosts("127.0.0.1:9092, localhost:9094,[::1]:9096") == []
    assert non_loopback_hosts("PLAINTEXT://127.0.0.1:9092,10.1.2.3:9092") == ["10.1.2.3"]
    assert non_loopback_hosts("kafka-1:9092,kafka-2") == ["kafka-1", "kafka-2"]


def _clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)  # no flinktrade.toml or .env of the checkout
    monkeypatch.delenv("FLINKTRADE_CONFIG", raising=False)
    for name in ("BOOTSTRAP_SERVERS", "ALLOW_UNAUTHENTICATED_REMOTE"):
        monkeypatch.delenv(f"FLINKTRADE_KAFKA__{name}", raising=False)
    monkeypatch.delenv("FLINKTRADE_BROKER__HOST", raising=False)


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092,10.0.0.5:9092", "10.0.0.5"),
        ("FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS", "kafka.internal:9092", "kafka.internal"),
        ("FLINKTRADE_BROKER__HOST", "0.0.0.0", "0.0.0.0"),
    ],
)
def test_a_broker_off_loopback_is_refused_without_the_acknowledgement(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, named: str
) -> None:
    _clean(monkeypatch, tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert named in message
    assert "FLINKTRADE_KAFKA__ALLOW_UNAUTHENTICATED_REMOTE=true" in message
    assert "\n" not in message
    monkeypatch.setenv("FLINKTRADE_KAFKA__ALLOW_UNAUTHENTICATED_REMOTE", "true")
    settings = load_settings()
    assert settings.kafka.allow_unauthenticated_remote is True


def test_loopback_settings_and_show_config_need_no_acknowledgement(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean(monkeypatch, tmp_path)
    assert load_settings().kafka.bootstrap_servers == "127.0.0.1:9092"
    monkeypatch.setenv("FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS", "10.0.0.5:9092")
    assert load_settings(check_exposure=False).kafka.bootstrap_servers == "10.0.0.5:9092"


def test_an_unparsable_settings_file_is_one_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _clean(monkeypatch, tmp_path)
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe[kafka")
    monkeypatch.setenv("FLINKTRADE_CONFIG", str(bad))
    with pytest.raises(ConfigError, match="invalid configuration"):
        load_settings()


@pytest.mark.parametrize("url", ["http://[bad", "host:notaport", "nohost", "ftp://h:1"])
def test_a_malformed_flink_endpoint_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match="must be host:port"):
        FlinkRest(url)


def test_the_local_flink_cluster_refuses_a_host_off_loopback(tmp_path: Path) -> None:
    cluster = LocalFlinkCluster(FlinkClusterSettings(host="0.0.0.0", rest_port=1), tmp_path)
    with pytest.raises(ConfigError, match="loopback"):
        cluster.up()
    assert not (tmp_path / "flink").exists()  # refused before anything was written


def test_a_starting_jobmanager_without_its_resource_manager_is_transient() -> None:
    """Right after start the REST API answers with an error until its ResourceManager is up (seen
    in CI: the cluster fixture gave up 14 s after the start instead of waiting)."""
    import http.server
    import threading

    from flinktrade.errors import TransientError

    answers = [
        (
            404,
            b'{"errors":["Cannot connect to ResourceManager right now. Please try to refresh."]}',
        ),
        (500, b'{"errors":["Internal server error."]}'),
    ]

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            code, body = answers.pop(0)
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rest = FlinkRest(f"127.0.0.1:{server.server_address[1]}")
        with pytest.raises(TransientError, match="ResourceManager"):
            rest.taskmanagers()
        with pytest.raises(InfraError, match="HTTP 500"):  # any other error is not
            rest.taskmanagers()
    finally:
        server.shutdown()
        server.server_close()


def test_the_jvm_temporary_folder_is_the_processs_own_and_gone_processes_lose_theirs(
    tmp_path: Path,
) -> None:
    """Flink's planner loader leaves a 44 MB jar in the JVM's temporary folder when the JVM is
    killed: each job JVM gets ``<tmp>/flinktrade-jvm-<uid>/<pid>``, and the folders of processes
    that are gone are removed when the next one is made (a live process's are kept)."""
    import os
    import subprocess
    import sys

    from flinktrade.infra import jvm

    parent = tmp_path / f"{jvm.PROCESS_TMP_PREFIX}{os.getuid()}"
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    gone_pid = int(gone.stdout)
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    ) as live:
        for pid in (gone_pid, live.pid):
            (parent / str(pid)).mkdir(parents=True)
            (parent / str(pid) / "flink-table-planner_x.jar").write_bytes(b"jar")
        (parent / "not-a-pid").mkdir()
        (parent / str(os.getpid())).mkdir()
        (parent / str(os.getpid()) / "stale").write_text("a gone process's, same pid")

        mine = jvm.process_tmpdir(tmp_path)

        assert mine == parent / str(os.getpid())
        assert list(mine.iterdir()) == []
        assert not (parent / str(gone_pid)).exists()
        assert (parent / str(live.pid) / "flink-table-planner_x.jar").is_file()
        assert (parent / "not-a-pid").is_dir()
        assert stat.S_IMODE(parent.stat().st_mode) == 0o700
        assert live.stdin is not None
        live.stdin.close()


def test_a_jvm_temporary_folder_that_cannot_be_made_is_one_infra_error(tmp_path: Path) -> None:
    from flinktrade.infra import jvm

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(InfraError, match="cannot create the JVM's temporary folder"):
        jvm.process_tmpdir(blocker)


def test_the_job_jvm_gets_its_own_temporary_folder_unless_jvm_args_name_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flinktrade.pipeline import job

    monkeypatch.setattr(job.jvm, "process_tmpdir", lambda: tmp_path / "mine")
    assert job.jvm_args_with_tmpdir(None) == f"-Djava.io.tmpdir={tmp_path / 'mine'}"
    assert job.jvm_args_with_tmpdir("-Xmx1g") == f"-Xmx1g -Djava.io.tmpdir={tmp_path / 'mine'}"
    assert job.jvm_args_with_tmpdir("-Djava.io.tmpdir=/x -Xmx1g") == "-Djava.io.tmpdir=/x -Xmx1g"


def test_the_job_jvm_has_the_jobs_jars_first_on_its_class_path_then_what_was_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from flinktrade.infra import jvm

    monkeypatch.setenv("FLINKTRADE_JARS_DIR", str(tmp_path))
    connector, udf = (
        str(tmp_path / "flink" / name) for name in (jvm.KAFKA_CONNECTOR_JAR, jvm.UDF_JAR)
    )
    assert jvm.gateway_class_path(None) == f"{connector}:{udf}"
    assert jvm.gateway_class_path("") == f"{connector}:{udf}"
    assert jvm.gateway_class_path("/opt/hadoop/a.jar") == f"{connector}:{udf}:/opt/hadoop/a.jar"


def test_a_job_for_a_cluster_ships_all_of_its_jars() -> None:
    """A cluster has none of the job's jars on its own class path: they travel with the job
    (``pipeline.jars``). A local job ships only those the gateway JVM lacks (tests/integration/
    test_job.py: none)."""
    from flinktrade.infra import jvm
    from flinktrade.pipeline import job

    options = job.JobOptions(jobmanager="localhost:8081")
    assert job.shipped_jars(options) == jvm.job_jars()
