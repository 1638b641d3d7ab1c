"""Kafka security settings: validation, the trust-boundary guard, and how they reach librdkafka
(``bus.client_config``) and the job's Kafka tables (``pipeline.sql``), password never shown.

The real broker with a SASL listener is in tests/integration/test_kafka_security.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flinktrade import bus
from flinktrade.config import KafkaSettings, Settings, load_settings, masked_dump
from flinktrade.errors import ConfigError
from flinktrade.pipeline import connectors

PASSWORD = "s3cret-'quote\"-\\back"
"""A password with the characters SQL and JAAS quoting must survive."""


def sasl(**overrides: object) -> KafkaSettings:
    values: dict[str, object] = {
        "bootstrap_servers": "kafka.example.com:9096",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "trader",
        "sasl_password": PASSWORD,
    }
    values.update(overrides)
    return KafkaSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    monkeypatch.chdir(tmp_path)  # no flinktrade.toml or .env of the checkout
    for name in list(os.environ):
        if name.startswith("FLINKTRADE_"):
            monkeypatch.delenv(name)
    return monkeypatch


def test_plaintext_settings_add_nothing_to_the_clients() -> None:
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    assert bus.client_config(kafka) == {"bootstrap.servers": "127.0.0.1:1"}
    assert bus.client_config("127.0.0.1:1") == {"bootstrap.servers": "127.0.0.1:1"}
    assert connectors.client_properties(kafka) == ()


def test_sasl_settings_reach_librdkafka_as_it_names_them() -> None:
    assert bus.client_config(sasl()) == {
        "bootstrap.servers": "kafka.example.com:9096",
        "security.protocol": "sasl_ssl",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "trader",
        "sasl.password": PASSWORD,
    }
    conf = bus.consumer_config(sasl(ssl_ca_location=Path("/etc/ca.pem")), "g")
    assert conf["security.protocol"] == "sasl_ssl" and conf["sasl.password"] == PASSWORD
    assert conf["ssl.ca.location"] == "/etc/ca.pem" and conf["group.id"] == "g"


def test_a_client_certificate_reaches_librdkafka() -> None:
    kafka = KafkaSettings(
        bootstrap_servers="kafka.example.com:9093",
        security_protocol="ssl",  # any case
        ssl_ca_location=Path("/ca.pem"),
        ssl_certificate_location=Path("/client.pem"),
        ssl_key_location=Path("/client.key"),
        ssl_key_password="keypw",
    )
    assert bus.client_config(kafka) == {
        "bootstrap.servers": "kafka.example.com:9093",
        "security.protocol": "ssl",
        "ssl.ca.location": "/ca.pem",
        "ssl.certificate.location": "/client.pem",
        "ssl.key.location": "/client.key",
        "ssl.key.password": "keypw",
    }
    assert kafka.authenticates


def test_the_job_clients_get_the_shaded_login_module_and_quoted_credentials() -> None:
    props = dict(connectors.client_properties(sasl()))
    assert props["security.protocol"] == "SASL_SSL"
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["sasl.jaas.config"] == (
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.scram.ScramLoginModule"
        ' required username="trader" password="s3cret-\'quote\\"-\\\\back";'
    )
    plain = dict(connectors.client_properties(sasl(sasl_mechanism="PLAIN")))
    assert plain["sasl.jaas.config"].startswith(
        "org.apache.flink.kafka.shaded.org.apache.kafka.common.security.plain.PlainLoginModule "
    )
    table = connectors.KafkaClients(
        "kafka.example.com:9096", "g", properties=connectors.client_properties(sasl())
    )
    consumer = table.consumer_properties()  # every DataStream source (job.kafka_source)
    assert (consumer["security.protocol"], consumer["sasl.mechanism"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert consumer["sasl.jaas.config"] == props["sasl.jaas.config"]
    producer = table.producer_properties()  # the outputs' DataStream sink (job.output_sink)
    assert (producer["security.protocol"], producer["sasl.mechanism"]) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
    )
    assert producer["sasl.jaas.config"] == props["sasl.jaas.config"]
    assert PASSWORD not in repr(table)


def test_the_job_needs_the_client_key_in_the_certificate_file() -> None:
    split = KafkaSettings(
        security_protocol="SSL",
        ssl_certificate_location=Path("/client.pem"),
        ssl_key_location=Path("/client.key"),
    )
    with pytest.raises(ConfigError, match="one PEM file"):
        connectors.client_properties(split)
    joined = split.model_copy(update={"ssl_key_location": Path("/client.pem")})
    props = dict(connectors.client_properties(joined))
    assert props["ssl.keystore.type"] == "PEM"
    assert props["ssl.keystore.location"] == "/client.pem"
    assert "ssl.truststore.location" not in props  # the JVM's own CAs


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_username": "u"}, "needs sasl_username and"),
        ({"security_protocol": "SASL_PLAINTEXT", "sasl_password": "p"}, "needs sasl_username"),
        ({"sasl_username": "u", "sasl_password": "p"}, "security_protocol is PLAINTEXT"),
        ({"ssl_ca_location": "/ca.pem"}, "security_protocol is PLAINTEXT"),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_username": "u",
                "sasl_password": "p",
                "ssl_ca_location": "/ca.pem",
            },
            "SSL or SASL_SSL",
        ),
        ({"security_protocol": "SSL", "ssl_certificate_location": "/c.pem"}, "both"),
        ({"security_protocol": "TLS"}, "security_protocol"),
        ({"security_protocol": "SASL_SSL", "sasl_mechanism": "GSSAPI"}, "sasl_mechanism"),
    ],
)
def test_inconsistent_security_settings_are_one_config_error(
    clean_env: pytest.MonkeyPatch, values: dict[str, str], needle: str
) -> None:
    for field, value in values.items():
        clean_env.setenv(f"FLINKTRADE_KAFKA__{field.upper()}", value)
    with pytest.raises(ConfigError, match="invalid configuration at kafka") as refused:
        load_settings()
    assert needle in str(refused.value)
    assert "\n" not in str(refused.value)


@pytest.mark.parametrize(
    "values",
    [
        {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": "p"},
        {
            "security_protocol": "sasl_plaintext",
            "sasl_mechanism": "scram-sha-256",
            "sasl_username": "u",
            "sasl_password": "p",
        },
        {
            "security_protocol": "SSL",
            "ssl_certificate_location": "/c.pem",
            "ssl_key_location": "/c.pem",
        },
    ],
)
def test_a_remote_broker_is_accepted_when_flinktrade_authenticates(
    clean_env: pytest.MonkeyPatch, values: dict[str, str]
) -> None:
    clean_env.setenv("FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS", "kafka.example.com:9096")
    for field, value in values.items():
        clean_env.setenv(f"FLINKTRADE_KAFKA__{field.upper()}", value)
    settings = load_settings()
    assert settings.kafka.authenticates
    assert not settings.kafka.allow_unauthenticated_remote


@pytest.mark.parametrize(
    "values",
    [
        {},  # PLAINTEXT
        {"security_protocol": "SSL"},  # encrypted, but the broker does not know who we are
        {"security_protocol": "SSL", "ssl_ca_location": "/ca.pem"},
    ],
)
def test_a_remote_broker_without_authentication_is_still_refused(
    clean_env: pytest.MonkeyPatch, values: dict[str, str]
) -> None:
    clean_env.setenv("FLINKTRADE_KAFKA__BOOTSTRAP_SERVERS", "kafka.example.com:9096")
    for field, value in values.items():
        clean_env.setenv(f"FLINKTRADE_KAFKA__{field.upper()}", value)
    with pytest.raises(ConfigError) as refused:
        load_settings()
    message = str(refused.value)
    assert "kafka.example.com" in message and "without authentication" in message
    assert "FLINKTRADE_KAFKA__SECURITY_PROTOCOL=SASL_SSL" in message
    assert "FLINKTRADE_KAFKA__ALLOW_UNAUTHENTICATED_REMOTE=true" in message
    clean_env.setenv("FLINKTRADE_KAFKA__ALLOW_UNAUTHENTICATED_REMOTE", "true")
    assert load_settings().kafka.bootstrap_servers == "kafka.example.com:9096"


def test_the_embedded_broker_off_loopback_is_refused_even_with_credentials(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("FLINKTRADE_BROKER__HOST", "0.0.0.0")
    clean_env.setenv("FLINKTRADE_KAFKA__SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    clean_env.setenv("FLINKTRADE_KAFKA__SASL_USERNAME", "u")
    clean_env.setenv("FLINKTRADE_KAFKA__SASL_PASSWORD", "p")
    with pytest.raises(ConfigError, match="embedded broker does not authenticate"):
        load_settings()


def test_the_password_is_masked_in_dumps_reprs_and_producers() -> None:
    kafka = sasl()
    settings = Settings(kafka=kafka)
    dumped = masked_dump(settings)
    assert dumped["kafka"]["sasl_password"] == "**********"
    assert dumped["kafka"]["sasl_username"] == "trader"
    assert PASSWORD not in str(dumped)
    assert PASSWORD not in repr(kafka) and PASSWORD not in str(kafka)
    assert PASSWORD not in repr(settings)
    local = kafka.model_copy(update={"bootstrap_servers": "127.0.0.1:9"})  # never answers
    producer = bus.EventProducer(local)
    assert PASSWORD not in repr(producer)
    assert producer.bootstrap_servers == "127.0.0.1:9"
