"""Notify configuration: SLACK_* and FLINKTRADE_NOTIFY__* names, URL rules, routes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flinktrade.config import load_settings, masked_dump
from flinktrade.errors import ConfigError
from flinktrade.events import Alert, Severity
from flinktrade.notify.console import ConsoleSink
from flinktrade.notify.notices import Notice
from flinktrade.notify.routing import build_routing
from flinktrade.notify.settings import EventType, NotifySettings, RouteSettings

HOOK = "https://hooks.slack.example/services/T1/B1/route-secret-1"


def test_slack_variables_are_read_by_their_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "bot-token-value-1")
    monkeypatch.setenv("SLACK_CHANNEL", "#trading")
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api")
    notify = load_settings().notify
    assert notify.bot_token is not None
    assert notify.bot_token.get_secret_value() == "bot-token-value-1"
    assert notify.channel == "#trading"
    assert notify.api_url == "http://127.0.0.1:9/api/"
    assert notify.slack_configured


def test_flinktrade_names_and_toml_work_and_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SLACK_CHANNEL", "#from-slack-var")
    monkeypatch.setenv("FLINKTRADE_NOTIFY__CHANNEL", "#from-flinktrade-var")
    monkeypatch.setenv("FLINKTRADE_NOTIFY__TOPICS__ALERTS", "alerts.test")
    (tmp_path / "flinktrade.toml").write_text(
        '[notify]\nmin_interval_s = 2.5\n[[notify.routes]]\nname = "critical"\n'
        'events = ["alert"]\nmin_severity = "critical"\nchannel = "#critical"\n'
    )
    notify = load_settings().notify
    assert notify.channel == "#from-flinktrade-var"
    assert notify.topics.alerts == "alerts.test"
    assert notify.min_interval_s == 2.5
    assert notify.routes == [
        RouteSettings(
            name="critical",
            events=[EventType.ALERT],
            min_severity=Severity.CRITICAL,
            channel="#critical",
        )
    ]


def test_secrets_are_masked_in_the_config_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_WEBHOOK_URL", HOOK)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "bot-token-value-2")
    dump = json.dumps(masked_dump(load_settings()))
    assert "route-secret-1" not in dump
    assert "bot-token-value-2" not in dump
    assert masked_dump(load_settings())["notify"]["webhook_url"] == "**********"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SLACK_WEBHOOK_URL", "http://hooks.slack.example/services/T1/B1/plain-secret"),
        ("SLACK_WEBHOOK_URL", "ftp://127.0.0.1/plain-secret"),
        ("SLACK_WEBHOOK_URL", "plain-secret"),
        ("SLACK_API_URL", "http://10.1.2.3/api/plain-secret"),
    ],
)
def test_only_https_or_loopback_http_is_accepted(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert name in str(info.value)
    assert "plain-secret" not in str(info.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "127.8.9.10"])
def test_plain_http_to_loopback_is_accepted(host: str) -> None:
    url = f"http://{host}:8080/services/x"
    assert NotifySettings(webhook_url=url).webhook_url is not None


def test_route_webhook_urls_are_checked_too() -> None:
    with pytest.raises(ValueError, match="https") as info:
        RouteSettings(name="r", webhook_url="http://example.com/route-secret")  # type: ignore[arg-type]
    assert "route-secret" not in str(info.value)


def test_without_slack_every_route_prints_to_the_console() -> None:
    routing = build_routing(
        NotifySettings(routes=[RouteSettings(name="a"), RouteSettings(name="b")])
    )
    assert [r.sink_key for r in routing.routes] == ["console", "console"]
    assert isinstance(routing.sinks["console"], ConsoleSink)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bot_token": "t"}, "has no channel: set SLACK_CHANNEL"),
        ({"webhook_url": HOOK, "routes": [{"name": "fills", "channel": "#f"}]}, "SLACK_BOT_TOKEN"),
        (
            {"routes": [{"name": "a", "webhook_url": HOOK}, {"name": "b"}]},
            "route 'b' has no Slack destination",
        ),
    ],
)
def test_incomplete_slack_configuration_names_the_route(
    values: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_routing(NotifySettings(**values))  # type: ignore[arg-type]


def test_duplicate_route_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unique: a"):
        NotifySettings(routes=[RouteSettings(name="a"), RouteSettings(name="a")])


def notice(type_: EventType, kind: str, severity: Severity, symbol: str = "AAPL") -> Notice:
    alert = Alert(id="x", kind=kind, message="m", ts=1)
    return Notice(f"{kind}{severity}{symbol}", type_, kind, severity, symbol, 1, alert)


def test_routes_select_by_event_type_severity_kind_and_symbol() -> None:
    routing = build_routing(
        NotifySettings(
            bot_token="t",  # type: ignore[arg-type]
            channel="#all",
            routes=[
                RouteSettings(
                    name="critical",
                    events=[EventType.ALERT],
                    min_severity=Severity.CRITICAL,
                    channel="#critical",
                ),
                RouteSettings(name="fills", events=[EventType.FILL], channel="#fills"),
                RouteSettings(
                    name="aapl-spikes", kinds=["volume_spike"], symbols=["AAPL"], channel="#all"
                ),
                RouteSettings(name="everything", min_severity=Severity.WARNING),
            ],
        )
    )
    channels = {key: sink.description for key, sink in routing.sinks.items()}

    def where(n: Notice) -> list[str]:
        return [channels[k] for k in routing.destinations(n)]

    assert where(notice(EventType.ALERT, "price_gap", Severity.CRITICAL)) == [
        "#critical via Web API",
        "#all via Web API",
    ]
    assert where(notice(EventType.FILL, "fill", Severity.INFO)) == ["#fills via Web API"]
    # two routes to the same channel: posted there once
    assert where(notice(EventType.ALERT, "volume_spike", Severity.WARNING)) == ["#all via Web API"]
    assert where(notice(EventType.ALERT, "volume_spike", Severity.INFO, "MSFT")) == []
    assert [r.describe() for r in routing.routes] == [
        "alerts (critical)",
        "fills",
        "all notifications of kind volume_spike for AAPL",
        "all notifications (warning and above)",
    ]


def test_a_route_naming_an_unknown_alert_kind_stops_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "flinktrade.toml").write_text(
        '[[notify.routes]]\nname = "spikes"\nkinds = ["volume_spike", "volume_spik"]\n'
    )
    with pytest.raises(ConfigError) as info:
        load_settings()
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith("invalid configuration at notify.routes.0.kinds: ")
    assert "unknown alert kind 'volume_spik' (did you mean 'volume_spike'?" in text


def test_an_unknown_kind_far_from_every_known_one_gets_no_guess() -> None:
    with pytest.raises(ValueError, match=r"unknown alert kind 'zzz' \(docs/alerts.md") as info:
        RouteSettings(name="r", kinds=["zzz"])  # type: ignore[list-item]
    assert "did you mean" not in str(info.value)


def test_routes_take_every_kind_the_system_emits_and_select_alerts_only() -> None:
    spikes = ["price_jump", "executor.halt", "stream_silent", "large_trade"]
    route = RouteSettings(name="r", kinds=spikes)  # type: ignore[arg-type]
    assert [str(k) for k in route.kinds] == spikes
    routing = build_routing(NotifySettings(routes=[route]))
    (resolved,) = routing.routes
    assert resolved.matches(notice(EventType.ALERT, "executor.halt", Severity.CRITICAL))
    assert not resolved.matches(notice(EventType.ALERT, "volume_spike", Severity.CRITICAL))
    assert not resolved.matches(notice(EventType.SIGNAL, "buy", Severity.INFO))
