"""Topic administration: list, create (idempotently) and delete topics.

Each takes the cluster as ``KafkaSettings`` (with its security settings) or as a bare
``host:port,...`` of a PLAINTEXT cluster (``bus.client``). Brokers that refuse flinktrade's
credentials are a ``ConfigError`` (one line, no retry); an unreachable cluster a ``TransientError``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from flinktrade.bus.client import Servers, authentication_failure, client_config, servers_of
from flinktrade.config import KafkaSettings
from flinktrade.errors import ConfigError, TransientError

log = logging.getLogger(__name__)


def admin(servers: Servers) -> AdminClient:
    return AdminClient(client_config(servers) | {"socket.timeout.ms": 10_000})


class _Admin:
    """An admin client that notices when the brokers refuse its credentials: librdkafka reports
    that through ``error_cb`` and keeps retrying, so a metadata request alone would only time out
    with a transport error."""

    def __init__(self, servers: Servers) -> None:
        self.servers = servers
        self.refusal: KafkaError | None = None
        self.client = AdminClient(
            client_config(servers) | {"socket.timeout.ms": 10_000, "error_cb": self._error}
        )

    def _error(self, error: KafkaError) -> None:
        if self.refusal is None and authentication_failure(error):
            self.refusal = error

    def topics(self, timeout_s: float) -> list[str]:
        """The cluster's topics (internal ones left out); asks in short steps until
        ``timeout_s`` so that a refusal ends the wait at once."""
        deadline = time.monotonic() + timeout_s
        while True:
            step = min(1.0, max(0.1, deadline - time.monotonic()))
            try:
                metadata = self.client.list_topics(timeout=step)
            except KafkaException as exc:
                error = exc.args[0]
                self.client.poll(0)  # serves error_cb
                if self.refusal is not None or authentication_failure(error):
                    raise refused(self.servers, self.refusal or error) from None
                if time.monotonic() < deadline:
                    continue
                raise TransientError(
                    f"Kafka at {servers_of(self.servers)} is not reachable: {exc}"
                ) from None
            return sorted(t for t in metadata.topics if not t.startswith("__"))


def list_topics(servers: Servers, timeout_s: float = 5.0) -> list[str]:
    return _Admin(servers).topics(timeout_s)


def refused(servers: Servers, error: KafkaError) -> ConfigError:
    """The one-line error for brokers that refused flinktrade's credentials."""
    who = ""
    if isinstance(servers, KafkaSettings) and servers.sasl_username:
        who = f" as user {servers.sasl_username!r}"
    return ConfigError(
        f"Kafka at {servers_of(servers)} refused flinktrade{who} ({error.str()}): check "
        "FLINKTRADE_KAFKA__SECURITY_PROTOCOL, FLINKTRADE_KAFKA__SASL_MECHANISM, "
        "FLINKTRADE_KAFKA__SASL_USERNAME and FLINKTRADE_KAFKA__SASL_PASSWORD (or the ssl_* settings)"
    )


def ensure_topics(settings: KafkaSettings, names: Iterable[str], timeout_s: float = 30.0) -> None:
    """Create the topics that do not exist yet (idempotent)."""
    checked = _Admin(settings)
    client = checked.client
    existing = set(checked.topics(timeout_s))
    new = [
        NewTopic(
            name,
            num_partitions=settings.partitions,
            replication_factor=settings.replication_factor,
            config={"retention.ms": str(settings.retention_ms)},
        )
        for name in names
        if name not in existing
    ]
    if not new:
        return
    for name, future in client.create_topics(new, request_timeout=timeout_s).items():
        try:
            future.result()
        except KafkaException as exc:
            error = exc.args[0]
            if authentication_failure(error):
                raise refused(settings, error) from None
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise TransientError(f"could not create topic {name}: {exc}") from None
        log.info("created topic %s (%d partitions)", name, settings.partitions)


def delete_topics(servers: Servers, names: Iterable[str], timeout_s: float = 30.0) -> None:
    client = admin(servers)  # keep the client alive until the futures resolve
    futures = client.delete_topics(list(names), request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
