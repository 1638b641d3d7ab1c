"""The Slack sinks: real slack_sdk clients against the loopback fake."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from pydantic import SecretStr

from flinktrade.notify.format import Message
from flinktrade.notify.sinks import (
    DeliveryError,
    DestinationError,
    MessageRejected,
    Sink,
    TransientDeliveryError,
)
from flinktrade.notify.slack import WebApiSink, WebhookSink
from flinktrade.testing.fake_slack import FakeSlack

MESSAGE = Message(
    "hello & welcome",
    (
        {"type": "header", "text": {"type": "plain_text", "text": "Hello", "emoji": True}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "hello &amp; welcome"}},
    ),
)

SinkFactory = Callable[[FakeSlack, str], Sink]


def webhook(fake: FakeSlack, channel: str) -> Sink:
    return WebhookSink(SecretStr(fake.webhook_url(channel)), timeout_s=5)


def web_api(fake: FakeSlack, channel: str) -> Sink:
    return WebApiSink(SecretStr(fake.token), channel, fake.api_url, timeout_s=5)


both = pytest.mark.parametrize("make", [webhook, web_api], ids=["webhook", "web_api"])


@both
def test_message_is_delivered_as_block_kit_with_text_fallback(
    fake_slack: FakeSlack, make: SinkFactory
) -> None:
    make(fake_slack, "#alerts").post(MESSAGE)
    [received] = fake_slack.messages("#alerts")
    assert received.text == "hello & welcome"
    assert received.blocks == list(MESSAGE.blocks)
    assert received.body["unfurl_links"] is False
    if received.api == "chat.postMessage":
        assert received.token == fake_slack.token
        assert received.body["channel"] == "#alerts"


@both
def test_http_429_waits_as_retry_after_says(fake_slack: FakeSlack, make: SinkFactory) -> None:
    sink = make(fake_slack, "#alerts")
    fake_slack.rate_limit(retry_after=1)
    sink.post(MESSAGE)
    first, second = fake_slack.requests
    assert (first.status, first.error) == (429, "ratelimited")
    assert second.accepted
    assert second.at - first.at >= 1.0


@both
def test_rate_limit_that_outlasts_the_client_retries_is_transient_with_retry_after(
    fake_slack: FakeSlack, make: SinkFactory
) -> None:
    fake_slack.rate_limit(retry_after=0, times=10)
    with pytest.raises(TransientDeliveryError) as info:
        make(fake_slack, "#alerts").post(MESSAGE)
    assert info.value.code == "ratelimited"
    assert info.value.retry_after == 0
    assert len(fake_slack.requests) == 2  # the first try and RateLimitErrorRetryHandler's one


@both
def test_server_error_is_transient(fake_slack: FakeSlack, make: SinkFactory) -> None:
    fake_slack.server_error(503)
    with pytest.raises(TransientDeliveryError):
        make(fake_slack, "#alerts").post(MESSAGE)
    make(fake_slack, "#alerts").post(MESSAGE)
    assert len(fake_slack.messages()) == 1


@both
@pytest.mark.parametrize(
    ("breakage", "kind", "codes"),
    [
        (lambda f: f.remove_channel("#alerts"), DestinationError, {"channel_not_found"}),
        (lambda f: f.archive("#alerts"), DestinationError, {"is_archived", "channel_is_archived"}),
        (lambda f: f.revoke(), DestinationError, {"invalid_auth", "invalid_token"}),
        (lambda f: f.fail("invalid_blocks"), MessageRejected, {"invalid_blocks"}),
    ],
    ids=["channel_not_found", "archived", "revoked", "invalid_blocks"],
)
def test_permanent_errors_are_classified(
    fake_slack: FakeSlack,
    make: SinkFactory,
    breakage: Callable[[FakeSlack], None],
    kind: type[DeliveryError],
    codes: set[str],
) -> None:
    sink = make(fake_slack, "#alerts")
    breakage(fake_slack)
    with pytest.raises(kind) as info:
        sink.post(MESSAGE)
    assert info.value.code in codes
    assert len(fake_slack.requests) == 1  # never retried


@both
def test_unreachable_slack_is_transient(make: SinkFactory) -> None:
    with FakeSlack() as fake:
        sink = make(fake, "#alerts")
    with pytest.raises(TransientDeliveryError) as info:
        sink.post(MESSAGE)
    assert info.value.code == "network_error"


def test_secrets_never_reach_logs_or_errors(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with FakeSlack() as fake:
        hook = fake.webhook_url("#alerts")
        sinks: list[Sink] = [
            WebhookSink(SecretStr(hook), timeout_s=5),
            WebApiSink(SecretStr(fake.token), "#alerts", fake.api_url, timeout_s=5),
        ]
        # even when someone turns the clients' loggers up to DEBUG
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("flinktrade.notify.slack.sdk."):
                logging.getLogger(name).setLevel(logging.DEBUG)
        faults: list[Callable[[], None]] = [
            lambda: None,
            lambda: fake.rate_limit(retry_after=0, times=2),
            lambda: fake.server_error(500),
            lambda: fake.fail("invalid_blocks"),
            fake.revoke,
        ]
        for inject in faults:
            for sink in sinks:
                inject()
                try:
                    sink.post(MESSAGE)
                except DeliveryError as exc:
                    seen += [str(exc), repr(exc)]
                fake.clear_faults()
    for sink in sinks:  # the fake is gone: connection refused, retried by the client
        try:
            sink.post(MESSAGE)
        except DeliveryError as exc:
            seen += [str(exc), repr(exc)]
    assert any("Sending a request" in r.getMessage() for r in caplog.records)  # DEBUG was on
    assert len(seen) >= 10
    secret_path = hook.split("/services/", 1)[1]
    for text in [caplog.text, *seen]:
        assert secret_path not in text
        assert fake.token not in text
