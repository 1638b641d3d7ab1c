"""Routes: which notices go to which destination, resolved from the settings into sinks.

A notice goes to every route it matches, but to each destination (channel) once, even when two
matching routes share it. Without any Slack credential all routes print to the console; with one,
every route must resolve to a Slack destination (else ``ConfigError``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flinktrade.errors import ConfigError
from flinktrade.events import AlertKind, Severity
from flinktrade.notify.console import ConsoleSink
from flinktrade.notify.notices import SEVERITY_RANK, Notice
from flinktrade.notify.settings import EventType, NotifySettings, RouteSettings
from flinktrade.notify.sinks import Sink

_PLURAL = {
    EventType.ALERT: "alerts",
    EventType.SIGNAL: "signals",
    EventType.ORDER: "orders",
    EventType.FILL: "fills",
}


@dataclass(frozen=True)
class Route:
    """A filter (empty sets match everything; ``kinds`` selects alerts of those kinds) and the
    key of the sink it posts to."""

    name: str
    sink_key: str
    events: frozenset[EventType] = frozenset()
    min_severity: Severity = Severity.INFO
    kinds: frozenset[AlertKind] = frozenset()
    symbols: frozenset[str] = frozenset()

    def matches(self, notice: Notice) -> bool:
        return (
            (not self.events or notice.type in self.events)
            and SEVERITY_RANK[notice.severity] >= SEVERITY_RANK[self.min_severity]
            and (not self.kinds or (notice.type is EventType.ALERT and notice.kind in self.kinds))
            and (not self.symbols or notice.symbol in self.symbols)
        )

    def describe(self) -> str:
        """What this route selects, for people: ``alerts (critical) for AAPL``."""
        if self.events:
            text = " and ".join(_PLURAL[e] for e in EventType if e in self.events)
        else:
            text = "all notifications"
        if self.kinds:
            text += " of kind " + ", ".join(sorted(self.kinds))
        if self.min_severity is Severity.WARNING:
            text += " (warning and above)"
        elif self.min_severity is Severity.CRITICAL:
            text += " (critical)"
        if self.symbols:
            text += " for " + ", ".join(sorted(self.symbols))
        return text


@dataclass
class Routing:
    """The routes and the sinks they post to, by sink key."""

    routes: list[Route]
    sinks: dict[str, Sink]

    def destinations(self, notice: Notice) -> list[str]:
        """The sink keys that get ``notice``, each once, in route order."""
        keys: dict[str, None] = {}
        for route in self.routes:
            if route.matches(notice):
                keys[route.sink_key] = None
        return list(keys)

    def close(self) -> None:
        for sink in self.sinks.values():
            sink.close()


def build_routing(settings: NotifySettings, console: Callable[[], Sink] = ConsoleSink) -> Routing:
    """Routes and sinks for ``settings``; raises ``ConfigError`` naming the route at fault."""
    routes = settings.routes or [RouteSettings(name="default")]
    sinks: dict[str, Sink] = {}
    resolved: list[Route] = []
    for spec in routes:
        sink = _sink(settings, spec) if settings.slack_configured else None
        if sink is None:
            sink = sinks.get("console") or console()
        sink = sinks.setdefault(sink.key, sink)
        resolved.append(
            Route(
                name=spec.name,
                sink_key=sink.key,
                events=frozenset(spec.events),
                min_severity=spec.min_severity,
                kinds=frozenset(spec.kinds),
                symbols=frozenset(spec.symbols),
            )
        )
    return Routing(resolved, sinks)


def _sink(settings: NotifySettings, route: RouteSettings) -> Sink:
    from flinktrade.notify import slack  # the vendor module, only when Slack is configured

    interval, timeout = settings.min_interval_s, settings.request_timeout_s
    if route.webhook_url is not None:
        return slack.WebhookSink(route.webhook_url, min_interval_s=interval, timeout_s=timeout)
    channel = route.channel
    if channel is None and settings.webhook_url is not None:
        return slack.WebhookSink(settings.webhook_url, min_interval_s=interval, timeout_s=timeout)
    channel = channel or settings.channel
    if settings.bot_token is None:
        if channel is not None:
            raise ConfigError(
                f"notify route {route.name!r} names channel {channel!r} but SLACK_BOT_TOKEN is not set"
            )
        raise ConfigError(
            f"notify route {route.name!r} has no Slack destination: give it a channel or a "
            "webhook_url, or set SLACK_WEBHOOK_URL"
        )
    if channel is None:
        raise ConfigError(
            f"notify route {route.name!r} has no channel: set SLACK_CHANNEL or the route's channel"
        )
    return slack.WebApiSink(
        settings.bot_token, channel, settings.api_url, min_interval_s=interval, timeout_s=timeout
    )
