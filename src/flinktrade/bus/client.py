"""What every confluent-kafka client flinktrade builds shares: where the brokers are and how it
authenticates to them.

``client_config(servers)`` is the base librdkafka configuration of every consumer, producer and
admin client in ``bus``: ``bootstrap.servers``, and from a ``KafkaSettings`` its security settings
(``security.protocol``, ``sasl.*``, ``ssl.*``). A bare ``host:port,...`` string means a PLAINTEXT
cluster (the embedded broker, tests). The password is only ever in this dictionary, which nothing
logs; ``servers_of`` is what messages name.

``authentication_failure(error)`` says whether a client error means the brokers refused the
credentials (or the TLS handshake), so a command can stop with one line instead of retrying.
"""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from flinktrade.config import KafkaSettings, SecurityProtocol

Servers = KafkaSettings | str
"""A cluster: its settings (with security), or bootstrap servers of a PLAINTEXT one."""

_AUTH_ERRORS = {
    KafkaError._AUTHENTICATION,
    KafkaError._SSL,
    KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}


def servers_of(servers: Servers) -> str:
    """The bootstrap servers, for messages (never the credentials)."""
    return servers.bootstrap_servers if isinstance(servers, KafkaSettings) else servers


def client_config(servers: Servers) -> dict[str, Any]:
    """``bootstrap.servers`` and the security settings, as librdkafka names them."""
    if not isinstance(servers, KafkaSettings):
        return {"bootstrap.servers": servers}
    s = servers
    conf: dict[str, Any] = {"bootstrap.servers": s.bootstrap_servers}
    if s.security_protocol is SecurityProtocol.PLAINTEXT:
        return conf  # librdkafka's default, left unset as before security settings existed
    conf["security.protocol"] = s.security_protocol.value.lower()
    if s.uses_sasl and s.sasl_username is not None and s.sasl_password is not None:
        conf["sasl.mechanism"] = s.sasl_mechanism.value
        conf["sasl.username"] = s.sasl_username
        conf["sasl.password"] = s.sasl_password.get_secret_value()
    if s.uses_tls:
        if s.ssl_ca_location is not None:
            conf["ssl.ca.location"] = str(s.ssl_ca_location)
        if s.ssl_certificate_location is not None:
            conf["ssl.certificate.location"] = str(s.ssl_certificate_location)
        if s.ssl_key_location is not None:
            conf["ssl.key.location"] = str(s.ssl_key_location)
        if s.ssl_key_password is not None:
            conf["ssl.key.password"] = s.ssl_key_password.get_secret_value()
    return conf


def authentication_failure(error: KafkaError) -> bool:
    """Whether ``error`` says the brokers refused who flinktrade is (credentials, TLS, ACLs)."""
    return error.code() in _AUTH_ERRORS
