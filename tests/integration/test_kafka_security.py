"""flinktrade's Kafka security settings against a real broker that requires SASL logins.

One KRaft broker for the module (``LocalKafka`` with a ``SaslListener``: a SASL_PLAINTEXT listener
taking PLAIN logins, beside its PLAINTEXT one). Every flinktrade client is pointed at the SASL
listener through ``KafkaSettings`` (in-process) or ``FLINKTRADE_KAFKA__*`` variables (the CLI):

- with the right credentials a producer, a bounded reader and a group consumer round-trip records,
  while a client without credentials gets nothing from the same listener;
- with a wrong password a command stops with one ``error:`` line (exit 2) naming the refusal,
  within a timeout, without a traceback and without printing either password;
- a bounded ``flinktrade job run`` reads its trades and writes its bars through the SASL listener
  (the connector's shaded login module), and the password is in none of its output or logs.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from flinktrade import bus, events, topics
from flinktrade.config import KafkaSettings
from flinktrade.errors import ConfigError, TransientError
from flinktrade.infra.kafka import LocalKafka, SaslListener
from flinktrade.testing.brokers import broker_settings
from flinktrade.testing.command import run_flinktrade
from flinktrade.testing.ports import free_port

pytestmark = pytest.mark.integration

USER = "flinktrade-svc"
PASSWORD = "pw-" + secrets.token_hex(12)
"""Random per run, so finding it anywhere in output can only mean it leaked."""
WRONG_PASSWORD = "wrong-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    state = tmp_path_factory.mktemp("sasl-state")
    broker = LocalKafka(
        broker_settings("512m"),
        state,
        sasl=SaslListener(port=free_port(), users={USER: PASSWORD}),
    )
    broker.up()
    yield broker
    broker.down()


def secure(broker: LocalKafka, password: str = PASSWORD) -> KafkaSettings:
    assert broker.sasl_bootstrap_servers is not None
    return KafkaSettings(
        bootstrap_servers=broker.sasl_bootstrap_servers,
        partitions=2,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username=USER,
        sasl_password=password,
    )


def cli_env(broker: LocalKafka, state: Path, password: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLINKTRADE_", "APCA_"))}
    env.update(
        {
            "FLINKTRADE_STATE_DIR": str(state),
            "FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS": str(broker.sasl_bootstrap_servers),
            "FLINKTRADE_KAFKA__PARTITIONS": "2",
            "FLINKTRADE_KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT",
            "FLINKTRADE_KAFKA__SASL_MECHANISM": "PLAIN",
            "FLINKTRADE_KAFKA__SASL_USERNAME": USER,
            "FLINKTRADE_KAFKA__SASL_PASSWORD": password,
            "COLUMNS": "200",
        }
    )
    env.update(extra)
    return env


def test_clients_with_the_right_credentials_round_trip_and_none_get_nothing(
    sasl_broker: LocalKafka,
) -> None:
    kafka = secure(sasl_broker)
    topic = f"secure.{uuid.uuid4().hex[:8]}"
    bus.ensure_topics(kafka, [topic])
    assert topic in bus.list_topics(kafka)
    sent = [
        events.Trade(ts=1_704_205_800_000 + i, id=f"t{i}", symbol=s, price=Decimal("101.5"), size=i)
        for i, s in enumerate(["AAPL", "MSFT", "AAPL"], 1)
    ]
    producer = bus.EventProducer(kafka)
    for trade in sent:
        producer.send(trade, topic)
    producer.flush()
    assert producer.produced == 3 and producer.failed == 0

    got = bus.decode_all(kafka, topic, events.Trade)
    assert sorted(got, key=lambda t: t.id) == sent

    group = bus.unique_group_id("secure-group")
    seen: list[events.Trade] = []
    with bus.consuming(kafka, group, topics=[topic], start_from="earliest") as consumer:
        deadline = time.monotonic() + 60
        while len(seen) < len(sent):
            assert time.monotonic() < deadline, f"group consumer saw {len(seen)} of {len(sent)}"
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            seen.append(events.decode(events.Trade, msg.value() or b""))
        consumer.commit(asynchronous=False)
    assert sorted(seen, key=lambda t: t.id) == sent
    assert sum(bus.committed_positions(kafka, group, topic).values()) == len(sent)

    # The same listener without a login: no metadata, no records.
    with pytest.raises((TransientError, ConfigError)):
        bus.list_topics(str(sasl_broker.sasl_bootstrap_servers), timeout_s=5)


def test_a_wrong_password_is_one_error_line_from_the_cli(
    sasl_broker: LocalKafka, tmp_path: Path
) -> None:
    env = cli_env(sasl_broker, tmp_path / "state", WRONG_PASSWORD)
    result = run_flinktrade("simulate", "--count", "5", env=env, cwd=tmp_path, timeout=90)
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-3000:]
    assert "refused" in errors[0] and USER in errors[0], errors[0]
    assert "FLINKTRADE_KAFKA__SASL_PASSWORD" in errors[0]
    assert WRONG_PASSWORD not in output and PASSWORD not in output
    # nothing was written: the refusal came before any record
    assert topics.TRADES.name not in bus.list_topics(secure(sasl_broker)) or (
        bus.count_records(secure(sasl_broker), topics.TRADES.name) == 0
    )


def test_a_bounded_job_reads_and_writes_through_sasl(
    sasl_broker: LocalKafka, tmp_path: Path
) -> None:
    kafka = secure(sasl_broker)
    bus.ensure_topics(kafka, [topics.TRADES.name, topics.ANALYTICS_BARS.name])
    t0 = 1_704_205_800_000  # 2024-01-02 14:30 UTC, a minute boundary
    # minute 1: 3 trades of AAPL; minute 2: 1 trade of AAPL, 2 of MSFT
    rows = [
        (t0 + 1_000, "AAPL", "100.50", 10),
        (t0 + 20_000, "AAPL", "101.25", 5),
        (t0 + 40_000, "AAPL", "99.75", 5),
        (t0 + 61_000, "AAPL", "102.00", 1),
        (t0 + 62_000, "MSFT", "300.10", 2),
        (t0 + 70_000, "MSFT", "300.30", 2),
    ]
    producer = bus.EventProducer(kafka)
    for i, (ts, symbol, price, size) in enumerate(rows):
        producer.send(
            events.Trade(ts=ts, id=f"j{i}", symbol=symbol, price=Decimal(price), size=size)
        )
    producer.flush()

    log_dir = tmp_path / "flink-log"
    log_dir.mkdir()
    env = cli_env(sasl_broker, tmp_path / "state", PASSWORD, FLINK_LOG_DIR=str(log_dir))
    result = run_flinktrade(
        "job", "run", "--bounded", "--from-earliest", env=env, cwd=tmp_path, timeout=600
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert PASSWORD not in output
    logs = [p for p in (*log_dir.rglob("*"), *(tmp_path / "state").rglob("*.log")) if p.is_file()]
    assert logs, "the job wrote no log where FLINK_LOG_DIR points"
    for path in logs:
        assert PASSWORD not in path.read_text(errors="replace"), path

    bars = {
        (b.symbol, b.ts): b
        for b in bus.decode_all(kafka, topics.ANALYTICS_BARS.name, events.AnalyticsBar)
    }
    # Hand-computed from the rows above.
    expected = {
        ("AAPL", t0): ("100.50", "101.25", "99.75", "99.75", 20, 3),
        ("AAPL", t0 + 60_000): ("102.00", "102.00", "102.00", "102.00", 1, 1),
        ("MSFT", t0 + 60_000): ("300.10", "300.30", "300.10", "300.30", 4, 2),
    }
    assert set(bars) == set(expected)
    for key, (o, h, low, c, volume, trades) in expected.items():
        bar = bars[key]
        assert (bar.open, bar.high, bar.low, bar.close) == tuple(
            Decimal(v) for v in (o, h, low, c)
        ), key
        assert (bar.volume, bar.trades) == (volume, trades), key
