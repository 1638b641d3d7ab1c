"""The loopback fake of Slack answers like Slack, checked with the real slack_sdk clients."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web import WebClient
from slack_sdk.webhook import WebhookClient

from flinktrade.testing.fake_slack import FakeSlack, check_payload

SECTION = {"type": "section", "text": {"type": "mrkdwn", "text": "hi"}}


def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=fake.token, base_url=fake.api_url, retry_handlers=[])


def test_post_message_answers_like_slack(fake_slack: FakeSlack) -> None:
    response = client(fake_slack).chat_postMessage(channel="#alerts", text="hi", blocks=[SECTION])
    assert response["ok"] is True
    assert response["channel"] == "alerts"
    assert fake_slack.messages("alerts")[0].blocks == [SECTION]


def test_webhook_answers_ok_and_unknown_hooks_no_service(fake_slack: FakeSlack) -> None:
    response = WebhookClient(fake_slack.webhook_url("#x"), retry_handlers=[]).send(text="hi")
    assert (response.status_code, response.body) == (200, "ok")
    unknown = WebhookClient(fake_slack.url + "/services/T/B/nope", retry_handlers=[]).send(
        text="hi"
    )
    assert (unknown.status_code, unknown.body) == (404, "no_service")


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ({"blocks": [SECTION]}, "text: a plain-text fallback is required"),
        ({"text": "t", "blocks": [SECTION] * 51}, "blocks: 51 > 50"),
        (
            {
                "text": "t",
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}],
            },
            "blocks[0]: text longer than 150",
        ),
        (
            {"text": "t", "blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "h"}}]},
            "blocks[0]: text object must be one of plain_text",
        ),
        (
            {"text": "t", "blocks": [{"type": "section", "fields": [SECTION["text"]] * 11}]},
            "blocks[0]: fields: at most 10",
        ),
        ({"text": "t", "blocks": [{"type": "sparkle"}]}, "blocks[0]: unknown block type"),
    ],
)
def test_payload_shape_is_checked(body: dict[str, object], problem: str) -> None:
    assert problem in check_payload(body)


def test_invalid_payload_is_refused_with_invalid_blocks(fake_slack: FakeSlack) -> None:
    hook = WebhookClient(fake_slack.webhook_url("#x"), retry_handlers=[])
    response = hook.send_dict({"text": "t", "blocks": [SECTION] * 51})
    assert (response.status_code, response.body) == (400, "invalid_blocks")
    with pytest.raises(SlackApiError) as info:
        client(fake_slack).chat_postMessage(channel="#x", text="t", blocks=[SECTION] * 51)
    assert info.value.response["error"] == "invalid_blocks"
    assert fake_slack.messages() == []


def test_faults_apply_to_their_channel_and_count_down(fake_slack: FakeSlack) -> None:
    fake_slack.rate_limit(retry_after=7, channel="#busy")
    web = client(fake_slack)
    web.chat_postMessage(channel="#quiet", text="t")
    with pytest.raises(SlackApiError) as info:
        web.chat_postMessage(channel="#busy", text="t")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "7"
    web.chat_postMessage(channel="#busy", text="t")
    assert [m.channel for m in fake_slack.messages()] == ["quiet", "busy"]


def test_channel_states_and_revoked_tokens(fake_slack: FakeSlack) -> None:
    web = client(fake_slack)
    fake_slack.archive("#old")
    fake_slack.remove_channel("#gone")
    for channel, error in [("#old", "is_archived"), ("#gone", "channel_not_found")]:
        with pytest.raises(SlackApiError) as info:
            web.chat_postMessage(channel=channel, text="t")
        assert info.value.response["error"] == error
    with pytest.raises(SlackApiError) as info:
        WebClient(token="wrong", base_url=fake_slack.api_url).chat_postMessage(
            channel="#a", text="t"
        )
    assert info.value.response["error"] == "invalid_auth"
    fake_slack.revoke()
    response = WebhookClient(fake_slack.webhook_url("#a"), retry_handlers=[]).send(text="t")
    assert (response.status_code, response.body) == (403, "invalid_token")


def test_optional_rate_limit_per_channel() -> None:
    with FakeSlack(min_interval_s=60) as fake:
        web = client(fake)
        web.chat_postMessage(channel="#a", text="t")
        web.chat_postMessage(channel="#b", text="t")
        with pytest.raises(SlackApiError) as info:
            web.chat_postMessage(channel="#a", text="t")
        assert info.value.response.status_code == 429


def test_wait_for_gives_up_at_its_deadline(fake_slack: FakeSlack) -> None:
    with pytest.raises(TimeoutError):
        fake_slack.wait_for(lambda f: len(f.messages()) > 0, timeout_s=0.2)
