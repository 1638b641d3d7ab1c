"""``flinktrade notify`` and ``flinktrade notify test`` as a user runs them (real processes)."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.events import Alert, Severity
from flinktrade.notify.settings import NotifyTopics
from flinktrade.testing.command import flinktrade_argv, run_flinktrade
from flinktrade.testing.fake_slack import FakeSlack

pytestmark = pytest.mark.integration


def notify_cli(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "COLUMNS": "200", **env}
    return run_flinktrade("notify", *args, env=environ, cwd=cwd, timeout=timeout)


def test_notify_test_sends_one_message_per_route(fake_slack: FakeSlack, tmp_path: Path) -> None:
    hook = fake_slack.webhook_url("#alerts")
    (tmp_path / "flinktrade.toml").write_text(
        '[[notify.routes]]\nname = "critical"\nmin_severity = "critical"\nchannel = "#critical"\n'
        '[[notify.routes]]\nname = "all"\n'
    )
    env = {
        "SLACK_WEBHOOK_URL": hook,
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_API_URL": fake_slack.api_url,
    }
    result = notify_cli("test", env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "route critical -> #critical via Web API: accepted" in output
    assert "route all -> incoming webhook" in output
    assert [m.channel for m in fake_slack.messages()] == ["critical", "alerts"]
    assert (
        fake_slack.messages()[0].text.startswith(
            "flinktrade test message: route critical is set up — alerts"
        )
        or "all notifications (critical)" in fake_slack.messages()[0].text
    )
    assert hook.split("/services/")[1] not in output
    assert fake_slack.token not in output


def test_notify_test_prints_slack_error_and_fails(fake_slack: FakeSlack, tmp_path: Path) -> None:
    fake_slack.remove_channel("#nowhere")
    env = {
        "SLACK_BOT_TOKEN": fake_slack.token,
        "SLACK_CHANNEL": "#nowhere",
        "SLACK_API_URL": fake_slack.api_url,
    }
    result = notify_cli("test", env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "route default -> #nowhere via Web API: channel_not_found" in output
    assert "1 of 1 test messages were not accepted" in output
    assert fake_slack.token not in output


def test_notify_test_without_slack_is_a_configuration_error(tmp_path: Path) -> None:
    result = notify_cli("test", env={}, cwd=tmp_path)
    assert result.returncode == 2
    assert "Slack is not configured" in result.stderr


def test_notify_without_slack_prints_to_the_console(
    kafka_settings: KafkaSettings, notify_topics: NotifyTopics, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "COLUMNS": "200",
        "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
        "FLINKTRADE_NOTIFY__TOPICS__ALERTS": notify_topics.alerts,
        "FLINKTRADE_NOTIFY__TOPICS__SIGNALS": notify_topics.signals,
        "FLINKTRADE_NOTIFY__TOPICS__ORDERS": notify_topics.orders,
        "FLINKTRADE_NOTIFY__TOPICS__FILLS": notify_topics.fills,
        "FLINKTRADE_NOTIFY__GROUP_ID": f"notify-cli-{uuid.uuid4().hex[:8]}",
    }
    alert = Alert(
        id="cli-1",
        kind="volume_spike",
        severity=Severity.WARNING,
        symbol="AAPL",
        message="Volume 5.2x the 20-bar average",
        ts=1_714_573_800_000,
    )
    producer = bus.EventProducer(kafka_settings.bootstrap_servers)
    producer.send(alert, notify_topics.alerts)
    producer.flush()
    process = subprocess.Popen(
        flinktrade_argv("notify", "--from-earliest"),
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    threading.Thread(target=lambda: [lines.put(x) for x in process.stdout], daemon=True).start()  # type: ignore[union-attr]
    seen: list[str] = []
    deadline = time.monotonic() + 30
    try:
        while not any("alert cli-1" in line for line in seen):
            remaining = deadline - time.monotonic()
            assert remaining > 0, f"no notification printed; got {seen}"
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=remaining))
    finally:
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    printed = "".join(seen)
    assert "⚠️ Volume spike: AAPL" in printed
    assert "Volume 5.2x the 20-bar average" in printed
    assert "2024-05-01 14:30:00 UTC · alert cli-1" in printed
    assert "notify stopped: 1 records, 1 messages" in err
