"""The daemons flinktrade starts, as they run: no secret in their environment, private state,
loopback only, and the Flink REST API without jar upload (but still taking `job submit`'s jobs)."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from flinktrade.config import JitCompiler
from flinktrade.infra import jvm
from flinktrade.infra.flink import FlinkClusterSettings, LocalFlinkCluster
from flinktrade.infra.kafka import LocalKafka
from flinktrade.infra.process import command_line
from flinktrade.testing.brokers import broker_settings
from flinktrade.testing.ports import free_port

pytestmark = pytest.mark.integration

SECRETS = {
    "APCA_API_KEY_ID": "key-id-4711",
    "APCA_API_SECRET_KEY": "alpaca-secret-4711",
    "SLACK_WEBHOOK_URL": "http://127.0.0.1:1/services/T0/B0/hook-secret-4711",
    "SLACK_BOT_TOKEN": "xoxb-secret-4711",
    "FLINKTRADE_API_TOKEN": "api-token-4711",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-4711",
}


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    pairs = [item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item]
    return {k.decode(): v.decode(errors="replace") for k, v in pairs}


def listening_addresses(pid: int) -> list[str]:
    """Local addresses of the TCP sockets in LISTEN state that process ``pid`` holds."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().as_posix()
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table, width in (("tcp", 8), ("tcp6", 32)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                found.append(_address(cols[1].split(":")[0], width))
    return found


def _address(hex_ip: str, width: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_ip)
    if width == 8:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    address = ipaddress.IPv6Address(words)
    return str(address.ipv4_mapped or address)  # Java listens on IPv4-mapped IPv6 sockets


def assert_no_secrets(pid: int) -> None:
    env = environ_of(pid)
    assert env, f"no environment read for pid {pid}"
    assert not set(SECRETS) & set(env), sorted(set(SECRETS) & set(env))
    assert not [k for k, v in env.items() if "4711" in v]
    assert "PATH" in env  # the allow-list is applied, not an empty environment


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def assert_private(folder: Path) -> None:
    """``folder`` and everything under it: folders 0700 (or tighter), files 0600 (or tighter)."""
    wide = []
    for path in [folder, *folder.rglob("*")]:
        if path.is_symlink():
            continue  # lib/ links to the wheel's jars
        limit = 0o700 if path.is_dir() else 0o600
        if mode(path) & ~limit:
            wide.append(f"{path.relative_to(folder)} {oct(mode(path))}")
    assert not wide, wide


@pytest.fixture
def secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)


def test_the_broker_runs_without_secrets_privately_on_loopback(
    secret_env: None, tmp_path: Path
) -> None:
    broker = LocalKafka(broker_settings("256m"), tmp_path)
    try:
        status = broker.up()
        assert status.pid is not None
        assert_no_secrets(status.pid)
        assert set(listening_addresses(status.pid)) == {"127.0.0.1"}  # broker and controller
        assert jvm.C1_ONLY in (command_line(status.pid) or [])  # broker.jit = "c1"
        assert_private(broker.home)
        assert (broker.home / "data" / "meta.properties").is_file()  # the JVM's own files too
    finally:
        broker.down()


@pytest.fixture
def small_flink(secret_env: None, tmp_path: Path) -> Iterator[LocalFlinkCluster]:
    cluster = LocalFlinkCluster(
        FlinkClusterSettings(
            rest_port=free_port(),
            rpc_port=free_port(),
            taskmanagers=1,
            slots=1,
            taskmanager_memory="1024m",
            jit=JitCompiler.C1,
        ),
        tmp_path,
    )
    try:
        cluster.up()
        yield cluster
    finally:
        cluster.down()


def _get(url: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, {}


def test_the_flink_cluster_runs_without_secrets_privately_and_takes_no_jar_uploads(
    small_flink: LocalFlinkCluster,
) -> None:
    status = small_flink.status()
    pids = [status.jobmanager_pid, *status.taskmanager_pids.values()]
    assert len(pids) == 2 and all(pids), pids
    for pid in pids:
        assert pid is not None
        assert_no_secrets(pid)
        assert set(listening_addresses(pid)) <= {"127.0.0.1"}, listening_addresses(pid)
        assert jvm.C1_ONLY in (command_line(pid) or [])  # jit=c1: env.java.opts.all
    assert status.jobmanager_pid is not None
    assert environ_of(status.jobmanager_pid)["FLINK_CONF_DIR"] == str(small_flink.conf_dir)

    config = (small_flink.conf_dir / "config.yaml").read_text().splitlines()
    for line in (
        "web.submit.enable: false",
        "web.cancel.enable: false",
        'rest.address: "127.0.0.1"',
        # a TaskManager that comes up before the ResourceManager retries within 0.5 s, not 10
        'cluster.registration.error-delay: "500 ms"',
    ):
        assert line in config

    rest = small_flink.rest_url
    code, dashboard = _get(f"{rest}/config")
    assert code == 200
    features = dashboard["features"]
    assert isinstance(features, dict)
    assert features["web-submit"] is False and features["web-cancel"] is False
    assert _get(f"{rest}/jars")[0] == 404  # no upload/run handlers at all
    assert _get(f"{rest}/jobs/overview")[0] == 200  # what `job list` uses still answers
    assert_private(small_flink.home)
