"""``flinktrade ingest`` as a user runs it: a subprocess, environment variables, one JSON line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from flinktrade import bus
from flinktrade.config import KafkaSettings
from flinktrade.events import Bar
from flinktrade.ingest.settings import IngestTopics
from flinktrade.testing.command import flinktrade_argv, run_flinktrade
from flinktrade.testing.fake_alpaca_data import FakeAlpacaData, parse_time

pytestmark = pytest.mark.integration


def env_for(
    fake: FakeAlpacaData | None, kafka: KafkaSettings | None, topics: IngestTopics | None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("APCA_", "FLINKTRADE_"))}
    if fake is not None:
        env |= {
            "APCA_API_KEY_ID": fake.key_id,
            "APCA_API_SECRET_KEY": fake.secret_key,
            "APCA_API_DATA_URL": fake.rest_url,
            "APCA_API_STREAM_URL": fake.stream_url("iex"),
            "APCA_API_NEWS_STREAM_URL": fake.news_stream_url,
        }
    if kafka is not None:
        env["FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS"] = kafka.bootstrap_servers
    if topics is not None:
        for name, value in topics.model_dump().items():
            env[f"FLINKTRADE_INGEST__TOPICS__{name.upper()}"] = value
    return env


def flinktrade(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_flinktrade("ingest", *args, env=env, cwd=cwd)


@pytest.mark.parametrize(
    ("present", "missing"),
    [({}, "APCA_API_KEY_ID"), ({"APCA_API_KEY_ID": "someone"}, "APCA_API_SECRET_KEY")],
)
def test_missing_keys_give_one_line_naming_the_variable(
    tmp_path: Path, present: dict[str, str], missing: str
) -> None:
    env = env_for(None, None, None) | present
    for command in (["history", "--symbols", "AAPL", "--start", "2024-01-02"],
                    ["live", "--symbols", "AAPL"]):  # fmt: skip
        result = flinktrade(*command, env=env, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and missing in lines[0]
        assert result.stdout == ""


def test_bad_arguments_give_one_line(tmp_path: Path) -> None:
    env = env_for(None, None, None)
    for args, needle in [
        (["history", "--symbols", "AAPL", "--start", "02/01/2024"], "--start"),
        (["history", "--symbols", "AAPL", "--start", "2024-01-02", "--timeframe", "7Sec"], "--timeframe"),
        (["history", "--symbols", ",", "--start", "2024-01-02"], "--symbols"),
        (["live", "--symbols", "AAPL", "--feed", "otc"], "--feed"),
        (["replay", "--file", "nope.csv"], "no such file"),
    ]:  # fmt: skip
        result = flinktrade(*args, env=env, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().splitlines() == [result.stderr.strip()]
        assert needle in result.stderr


def test_commands_read_the_ingest_section_of_the_config_file(
    tmp_path: Path, kafka_settings: KafkaSettings, ingest_topics: IngestTopics
) -> None:
    """``[ingest]`` in flinktrade.toml counts as much as FLINKTRADE_INGEST__* does."""
    lines = [f'{name} = "{value}"' for name, value in ingest_topics.model_dump().items()]
    (tmp_path / "flinktrade.toml").write_text("[ingest.topics]\n" + "\n".join(lines) + "\n")
    (tmp_path / "trades.csv").write_text(
        "timestamp,symbol,price,size\n"
        "2024-01-02T14:30:01Z,AAPL,185.64,100\n"
        "2024-01-02T14:30:02Z,AAPL,185.70,0\n"
    )
    env = env_for(None, kafka_settings, None)  # no FLINKTRADE_INGEST__* variables
    result = flinktrade("replay", "--file", "trades.csv", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["trades"] == 1
    servers = kafka_settings.bootstrap_servers
    assert bus.count_records(servers, ingest_topics.trades) == 1
    assert bus.count_records(servers, ingest_topics.deadletter) == 1


def test_history_command_end_to_end(
    tmp_path: Path,
    fake: FakeAlpacaData,
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:
    env = env_for(fake, kafka_settings, ingest_topics)
    args = ["history", "--symbols", "AAPL,MSFT", "--start", "2024-01-02", "--end", "2024-01-03"]
    result = flinktrade(*args, "--bars", "--news", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    news = len(fake.news(["AAPL", "MSFT"], parse_time("2024-01-02"), parse_time("2024-01-04") - 1))
    assert counts == {"bars": 2 * 2 * 390, "trades": 0, "news": news, "deadletter": 0}
    assert "AAPL bars" in result.stderr  # the per-symbol progress bar
    assert fake.key_id not in result.stderr and fake.secret_key not in result.stderr

    resumed = flinktrade(*args, "--resume", env=env, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["bars"] == 0
    bars = bus.decode_all(kafka_settings.bootstrap_servers, ingest_topics.bars, Bar)
    assert len(bars) == 2 * 2 * 390


def test_live_command_stops_cleanly_on_sigterm(
    tmp_path: Path,
    fake: FakeAlpacaData,
    kafka_settings: KafkaSettings,
    ingest_topics: IngestTopics,
) -> None:
    fake.clock_ms = parse_time("2024-01-02T14:30:00Z")
    env = env_for(fake, kafka_settings, ingest_topics)
    proc = subprocess.Popen(
        flinktrade_argv("ingest", "live", "--symbols", "AAPL"),
        env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        fake.wait_for(lambda f: f.subscribed("/v2/iex", "bars", ["AAPL"]), 30, "subscription")
        fake.emit_minutes(5, "iex")
        bus.wait_for(
            lambda: bus.count_records(kafka_settings.bootstrap_servers, ingest_topics.bars) == 5,
            30,
            what="the streamed bars in the topic",
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    counts = json.loads(out.strip().splitlines()[-1])
    assert counts["bars"] == 5
    trades = bus.count_records(kafka_settings.bootstrap_servers, ingest_topics.trades)
    assert trades == counts["trades"] > 0  # everything counted was flushed before exit
